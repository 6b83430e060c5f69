#!/usr/bin/env bash
# Daemon memory (issue 6's measurement): `tagpilot run` with REPOS ImageRepositories x TAGS tags
# each (and one semver ImagePolicy per repository), all scanned and resolved, next to the same
# daemon idle on an empty configuration in the same run (the baseline). Reports resident memory
# (VmRSS) once everything is Ready, and the peak (VmHWM). Target: < 64 MiB with 1,000 x 1,000.
# Tags come from bench/synthetic_registry.py (a benchmark fixture; see its header).
# usage: bench/daemon-memory.sh [REPOS=1000] [TAGS=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
repos=${1:-1000}; tags=${2:-1000}
cargo build --release -q -p tagpilot
bin=$PWD/target/release/tagpilot
. tests/e2e/servers.sh
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

rport=$(free_port)
python3 bench/synthetic_registry.py "$rport" "$tags" & pids+=($!)
until curl -sf -o /dev/null "http://127.0.0.1:$rport/v2/"; do sleep 0.05; done

mkdir -p "$work/config" "$work/empty"
python3 - "$work/config/repos.yaml" "$repos" "$rport" <<'PY'
import sys
path, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(path, "w") as f:
    for i in range(n):
        f.write(f"""---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app-{i}, namespace: bench}}
spec: {{image: 127.0.0.1:{port}/team/app-{i}, interval: 1h, insecure: true}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app-{i}, namespace: bench}}
spec:
  imageRepositoryRef: {{name: app-{i}}}
  policy: {{semver: {{range: ">=1.0.0"}}}}
""")
PY

# run DIR STATE: starts the daemon, waits until every policy is Ready, prints "rss_kib hwm_kib secs".
measure() {
  local dir=$1 state=$2 want=$3 api pid t0 ready
  api=127.0.0.1:$(free_port)
  "$bin" run --config "$dir" --state-dir "$state" --api-address "$api" --webhook-address "" \
    --registry-requests-per-second 0 --log-level warn 2> "$state.log" & pid=$!; pids+=($pid)
  t0=$(date +%s.%N)
  while :; do
    ready=$(curl -sf "http://$api/metrics" | grep -c '^tagpilot_policy_latest_info' || true)
    [ "$ready" -ge "$want" ] && curl -sf -o /dev/null "http://$api/readyz" && break
    kill -0 "$pid" || { echo "daemon died: $(tail -5 "$state.log")" >&2; exit 1; }
    sleep 0.2
  done
  local secs; secs=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }')
  sleep 2 # settle
  echo "$(kib $pid VmRSS) $(kib $pid VmHWM) $secs"
  kill "$pid"; wait "$pid" 2> /dev/null || true
}

read -r base_rss base_hwm _ < <(measure "$work/empty" "$work/state-empty" 0)
read -r rss hwm secs < <(measure "$work/config" "$work/state" "$repos")
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
printf '%-52s %10s %10s\n' "daemon" "RSS MiB" "peak MiB"
printf '%-52s %10s %10s\n' "baseline: idle, empty configuration" "$(mib "$base_rss")" "$(mib "$base_hwm")"
printf '%-52s %10s %10s   (all Ready after %.1f s)\n' "$repos repositories x $tags tags, $repos policies" \
  "$(mib "$rss")" "$(mib "$hwm")" "$secs"
