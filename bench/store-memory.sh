#!/usr/bin/env bash
# Store memory and size: 1,000 repositories x 1,000 tags written as scans write them, then
# read back one repository at a time. Reports peak resident memory and the redb file size.
# usage: bench/store-memory.sh [REPOS=1000] [TAGS=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p tagpilot-store --example fill
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
target/release/examples/fill "$work/tagpilot.redb" "${1:-1000}" "${2:-1000}"
