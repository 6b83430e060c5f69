#!/usr/bin/env bash
# Webhook → pushed commit latency (issue 8's measurement), next to a baseline in the same run.
#
# Starts Debian's docker-registry and git daemon on 127.0.0.1 and the guide's example (podinfo,
# `5.0.x`), with every interval set to one hour so that only webhooks move anything. For each of
# N updates a new tag 5.0.<i> is pushed to the registry, then:
#   tagpilot  a `generic` Receiver webhook is POSTed to the running daemon; the clock stops when
#             `git ls-remote` shows the new commit on the Git server.
#   baseline  what a cron job would do: `tagpilot run --once` (a fresh process, warm state dir),
#             timed until the same commit is on the server.
# Prints p50 and p99 (milliseconds) of both. Target (issue 8): webhook p50 < 500 ms, p99 < 2 s.
#
# usage: bench/webhook-latency.sh [N]      (default 50; builds target/release/tagpilot)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-50}
cargo build --release -q -p tagpilot
bin=$PWD/target/release/tagpilot
. tests/e2e/servers.sh
now_ms() { echo $(($(date +%s%N) / 1000000)); }

start_registry
bash tests/e2e/push-tags.sh "http://$registry" stefanprodan/podinfo 5.0.0 5.0.1 5.0.2 5.0.3

gport=$(free_port)
# One fleet repository and one configuration per contender, so they never race each other.
setup() { # name
  local name=$1 fleet=$work/$1-fleet cfg=$work/$1-config
  git init -q --bare -b main "$work/srv/$name.git"
  git clone -q "file://$work/srv/$name.git" "$fleet" 2> /dev/null
  mkdir -p "$fleet/clusters"
  cp -r config/clusters/my-cluster "$fleet/clusters/"
  sed -i "s#ghcr.io/stefanprodan/podinfo#$registry/stefanprodan/podinfo#" "$fleet/clusters/my-cluster/"*.yaml
  git -C "$fleet" checkout -q -b main
  git -C "$fleet" add -A
  git -C "$fleet" -c user.name=you -c user.email=you@example.com commit -q -m init
  git -C "$fleet" push -q origin main
  cp -r config/clusters/my-cluster "$cfg"
  sed -i "s#ghcr.io/stefanprodan/podinfo#$registry/stefanprodan/podinfo#" "$cfg"/*.yaml
  sed -i "s#  interval: 1m0s#  interval: 1h0m0s\n  insecure: true#" "$cfg/podinfo-registry.yaml"
  sed -i "s#interval: 1m0s#interval: 1h0m0s#; s#interval: 1m#interval: 1h#" "$cfg"/*.yaml
  cat > "$cfg/flux-system-source.yaml" <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 1h0m0s
  ref: {branch: main}
  url: git://127.0.0.1:$gport/$name.git
YAML
  cat > "$cfg/receiver.yaml" <<YAML
apiVersion: v1
kind: Secret
metadata: {name: webhook-token, namespace: flux-system}
stringData: {token: bench-token}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: registry, namespace: flux-system}
spec:
  type: generic
  secretRef: {name: webhook-token}
  resources:
    - {apiVersion: image.toolkit.fluxcd.io/v1beta2, kind: ImageRepository, name: podinfo}
YAML
}
setup daemon
setup once
start_git_daemon "$gport" daemon
head_of() { git ls-remote "git://127.0.0.1:$gport/$1.git" refs/heads/main | cut -f1; }
wait_change() { # repo old-sha
  local deadline=$(($(now_ms) + 60000))
  while [ "$(head_of "$1")" = "$2" ]; do
    if [ "$(now_ms)" -gt "$deadline" ]; then
      echo "no new commit on $1 within 60 s; daemon log:"; cat "$work/daemon.log"; exit 1
    fi
    sleep 0.005
  done
}

hport=$(free_port)
path=/hook/$(printf '%s' "bench-tokenregistryflux-system" | sha256sum | cut -d' ' -f1)
old=$(head_of daemon)
RUST_LOG=${RUST_LOG:-warn} "$bin" run --config "$work/daemon-config" --state-dir "$work/daemon-state" \
  --api-address "" --webhook-address "127.0.0.1:$hport" 2> "$work/daemon.log" & pids+=($!)
# The first update (5.0.0 -> 5.0.3) happens at start; wait for it, and warm the --once state.
wait_change daemon "$old"
"$bin" run --once --config "$work/once-config" --state-dir "$work/once-state" > /dev/null

: > "$work/webhook.ms"; : > "$work/once.ms"
for i in $(seq 4 $((n + 3))); do
  bash tests/e2e/push-tags.sh "http://$registry" stefanprodan/podinfo "5.0.$i" > /dev/null
  old=$(head_of daemon)
  t0=$(now_ms)
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$hport$path")
  [ "$code" = 200 ] || { echo "webhook answered $code"; cat "$work/daemon.log"; exit 1; }
  wait_change daemon "$old"
  echo $(($(now_ms) - t0)) >> "$work/webhook.ms"

  old=$(head_of once)
  t0=$(now_ms)
  "$bin" run --once --config "$work/once-config" --state-dir "$work/once-state" > /dev/null
  wait_change once "$old"
  echo $(($(now_ms) - t0)) >> "$work/once.ms"
done

python3 - "$work/webhook.ms" "$work/once.ms" <<'PY'
import sys
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
print(f"{'updates':<44}{'p50 ms':>8}{'p99 ms':>8}")
for name, f in (("tagpilot daemon, webhook -> commit on server", sys.argv[1]),
                ("baseline: tagpilot run --once per update", sys.argv[2])):
    xs = [int(l) for l in open(f) if l.strip()]
    print(f"{name:<44}{pct(xs, 50):>8}{pct(xs, 99):>8}   (n={len(xs)})")
PY
