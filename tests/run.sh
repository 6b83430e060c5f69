#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this script).
#
# Installs what the tests need (idempotent), then: formatting, lints, the fuzz targets'
# build, and every test in the workspace. Servers that end-to-end tests need are started by
# the tests' own scripts under tests/, on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

log "toolchain"
cargo --version
rustc --version
rustup component list --installed 2>/dev/null | grep -E '^(rustfmt|clippy)' || true

# System packages: none are needed yet beyond the Rust toolchain, git and a C compiler.
need=()
command -v git >/dev/null || need+=(git)
command -v cc >/dev/null || need+=(gcc)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq "${need[@]}"
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "fuzz targets build"
cargo check --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-check --locked

log "benchmarks build"
cargo bench --workspace --no-run --locked

log "cargo test"
cargo test --workspace --locked
