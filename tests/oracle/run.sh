#!/usr/bin/env bash
# Regenerates crates/policy/tests/data/flux_oracle.tsv with tests/oracle/flux_policy.go.
#
#   tests/oracle/run.sh SEMVER_SOURCE_DIR
#
# SEMVER_SOURCE_DIR: a checkout of github.com/Masterminds/semver at the version Flux uses
# (v3.4.0 was used for the recorded file). Needs Go (Debian: golang-go); nothing is fetched.
set -euo pipefail
src=${1:?usage: tests/oracle/run.sh SEMVER_SOURCE_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
gopath=$(mktemp -d); trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/github.com/Masterminds/semver" "$gopath/src/oracle"
cp -r "$src" "$gopath/src/github.com/Masterminds/semver/v3"
cp "$root/tests/oracle/flux_policy.go" "$gopath/src/oracle/main.go"
version=$(cd "$src" && (git describe --tags 2>/dev/null || echo unknown))
out=$root/crates/policy/tests/data/flux_oracle.tsv
{
  echo "# Decided by tests/oracle/flux_policy.go: Masterminds/semver $version, fluxcd/pkg's"
  echo "# ParseVersion rule, image-reflector-controller's Latest loops, $(go version | cut -d' ' -f3) strconv.ParseFloat."
  echo "# kind<TAB>argument<TAB>tags in Flux's stored order<TAB>answer (see the program's header)"
  (cd "$gopath/src/oracle" && GOPATH=$gopath GO111MODULE=off GOFLAGS= go run .)
} > "$out"
echo "wrote $(grep -vc '^#' "$out") cases to $out"
