#!/usr/bin/env bash
# Daemon at scale (issue 17 item 4), extending bench/daemon-memory.sh: REPOS ImageRepositories x
# TAGS tags on bench/synthetic_registry.py (a benchmark fixture; see its header), one semver
# ImagePolicy per repository, AUTOMATIONS ImageUpdateAutomations over REMOTES fleet repositories
# behind git daemon (every policy's image marked once, at 0.0.0, so every automation pushes at
# start). One namespace per automation, as teams are laid out: an automation applies every
# policy of its namespace (Flux's rule, and its status lists them all in observedPolicies), so
# 10,000 policies in one namespace would make each of 100 automations carry 10,000. Default
# settings but the intervals (1h, so that the idle minute is between intervals).
# Measured in one run, next to the same daemon idle on an empty configuration (the baseline):
#   ready     seconds from start until every object reports Ready (tagpilot_object_ready)
#   webhook   during the initial pass, once app-0 was committed, a new tag is added to app-0 and
#             a generic Receiver webhook for it is POSTed: milliseconds until its commit is on
#             the Git server
#   memory    VmRSS once everything is Ready, and the peak (VmHWM)
#   idle CPU  CPU time (utime + stime) of each daemon over IDLE seconds after that, in % of a core
# Targets: Ready < 60 s, webhook commit < 1 s, RSS < 128 MiB, idle < 1% of a core.
# usage: bench/daemon-scale.sh [REPOS=10000] [TAGS=100] [AUTOMATIONS=100] [REMOTES=10] [IDLE=60]
# (LOG_LEVEL=info SAVE_LOG=FILE: the daemon logs at that level and its log is kept in FILE)
set -euo pipefail
cd "$(dirname "$0")/.."
repos=${1:-10000}; tags=${2:-100}; automations=${3:-100}; remotes=${4:-10}; idle=${5:-60}
[ $((repos % automations)) = 0 ] && [ $((automations % remotes)) = 0 ] ||
  { echo "REPOS must be a multiple of AUTOMATIONS, AUTOMATIONS of REMOTES"; exit 2; }
# TAGPILOT_BIN: another build of the daemon (e.g. target/release-symbols/tagpilot for perf).
bin=${TAGPILOT_BIN:-$PWD/target/release/tagpilot}
[ -n "${TAGPILOT_BIN:-}" ] || cargo build --release -q -p tagpilot
. tests/e2e/servers.sh
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

rport=$(free_port); gport=$(free_port)
python3 bench/synthetic_registry.py "$rport" "$tags" & pids+=($!)
until curl -sf -o /dev/null "http://127.0.0.1:$rport/v2/"; do sleep 0.05; done

# Fleet repositories (fast-import: REPOS files) and the configuration, from one generator.
mkdir -p "$work/srv" "$work/config" "$work/empty"
python3 - "$work" "$repos" "$automations" "$remotes" "$rport" "$gport" <<'PY'
import os, subprocess, sys
work, repos, autos, remotes, rport, gport = sys.argv[1], *map(int, sys.argv[2:])
per_auto, autos_per_remote = repos // autos, autos // remotes
for r in range(remotes):
    git = os.path.join(work, "srv", f"fleet-{r}.git")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", git], check=True)
    out = []
    out.append(b"commit refs/heads/main\ncommitter Bench <b@example.com> 1700000000 +0000\ndata 5\nfleet\n")
    for a in range(r * autos_per_remote, (r + 1) * autos_per_remote):
        for i in range(a * per_auto, (a + 1) * per_auto):
            body = (f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: app-{i}, namespace: team-{a}}}\n"
                    f"spec:\n  template:\n    spec:\n      containers:\n        - name: app\n"
                    f"          image: 127.0.0.1:{rport}/team/app-{i}:0.0.0 "
                    f'# {{"$imagepolicy": "team-{a}:app-{i}"}}\n').encode()
            out.append(b"M 100644 inline apps/a-%d/app-%d.yaml\ndata %d\n%s\n" % (a, i, len(body), body))
    subprocess.run(["git", "-C", git, "fast-import", "--quiet"], input=b"".join(out), check=True)
with open(os.path.join(work, "config", "bench.yaml"), "w") as f:
    f.write("""apiVersion: v1
kind: Secret
metadata: {name: hook, namespace: team-0}
stringData: {token: bench-token}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: registry, namespace: team-0}
spec:
  type: generic
  secretRef: {name: hook}
  resources: [{apiVersion: image.toolkit.fluxcd.io/v1, kind: ImageRepository, name: app-0}]
""")
    for r in range(remotes):
        f.write(f"""---
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: fleet-{r}, namespace: team-{r * autos_per_remote}}}
spec: {{interval: 1h, url: "git://127.0.0.1:{gport}/fleet-{r}.git", ref: {{branch: main}}}}
""")
    for a in range(autos):
        f.write(f"""---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: a-{a}, namespace: team-{a}}}
spec:
  interval: 1h
  sourceRef: {{kind: GitRepository, name: fleet-{a // autos_per_remote}, namespace: team-{a // autos_per_remote * autos_per_remote}}}
  git:
    checkout: {{ref: {{branch: main}}}}
    commit: {{author: {{name: tagpilot, email: tagpilot@example.com}}}}
    push: {{branch: main}}
  update: {{path: ./apps/a-{a}, strategy: Setters}}
""")
    for i in range(repos):
        f.write(f"""---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app-{i}, namespace: team-{i // per_auto}}}
spec: {{image: 127.0.0.1:{rport}/team/app-{i}, interval: 1h, insecure: true}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app-{i}, namespace: team-{i // per_auto}}}
spec:
  imageRepositoryRef: {{name: app-{i}}}
  policy: {{semver: {{range: ">=0.0.0"}}}}
""")
PY
start_git_daemon "$gport" fleet-0
objects=$((2 * repos + automations))
echo "fixture: $repos repositories x $tags tags, $repos policies, $automations automations over $remotes remotes"

start() { # DIR STATE -> sets pid api hook
  api=127.0.0.1:$(free_port); hook=127.0.0.1:$(free_port)
  "$bin" run --config "$1" --state-dir "$2" --api-address "$api" --webhook-address "$hook" \
    --log-level "${LOG_LEVEL:-warn}" 2> "$2.log" & pid=$!; pids+=($pid)
  until curl -sf -o /dev/null "http://$api/healthz"; do
    kill -0 "$pid" 2> /dev/null || { echo "daemon died: $(tail -5 "$2.log")"; exit 1; }
    sleep 0.01
  done
}
# "ready total" of the objects with a status (repositories, policies, automations, receivers).
ready_count() {
  curl -sf "http://$api/metrics" | awk '/^tagpilot_object_ready\{/ { t++; if ($NF == 1) r++ } END { print r + 0, t + 0 }'
}

start "$work/empty" "$work/state-empty"; base_pid=$pid
t0=$(now)
start "$work/config" "$work/state"

# The webhook, while the initial pass runs: once app-0 is in Git (a-0's first push; its
# repository was scanned), app-0 gets a tag above every other one and a generic Receiver
# webhook names it. Pushing the tag before the first scan would measure that scan instead.
in_git() { git -C "$work/srv/fleet-0.git" show main:apps/a-0/app-0.yaml 2> /dev/null | grep -q ":$1 "; }
while in_git 0.0.0; do
  [ "$(since "$t0" | cut -d. -f1)" -lt 120 ] || { echo "app-0 not committed within 120 s"; exit 1; }
  sleep 0.02
done
first_push_s=$(since "$t0")
read -r ready_at_hook _ < <(ready_count)
curl -sf -o /dev/null -X POST "http://127.0.0.1:$rport/bench/push/team/app-0?tag=9.0.0"
path=/hook/$(printf '%s' "bench-tokenregistryteam-0" | sha256sum | cut -d' ' -f1)
th=$(now)
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$hook$path")
[ "$code" = 200 ] || { echo "webhook answered $code"; tail -5 "$work/state.log"; exit 1; }
hook_after_s=$(since "$t0")
hook_ms="more than 120000"
until in_git 9.0.0; do
  [ "$(since "$th" | cut -d. -f1)" -lt 120 ] || break
  sleep 0.005
done
in_git 9.0.0 && hook_ms=$(awk -v s="$(since "$th")" 'BEGIN { printf "%d", s * 1000 }')

while read -r ready total < <(ready_count); [ "$total" -lt "$objects" ] || [ "$ready" -lt "$total" ]; do
  [ "$(since "$t0" | cut -d. -f1)" -lt 600 ] || { echo "not Ready within 600 s: $ready of $total"; exit 1; }
  kill -0 "$pid" 2> /dev/null || { echo "daemon died: $(tail -5 "$work/state.log")"; exit 1; }
  sleep 0.2
done
ready_s=$(since "$t0"); objects=$total
pushed=0
for ((r = 0; r < remotes; r++)); do
  pushed=$((pushed + $(git -C "$work/srv/fleet-$r.git" rev-list --count main) - 1))
done
sleep 2 # let the last round's work settle before the idle minute
rss=$(kib "$pid" VmRSS); hwm=$(kib "$pid" VmHWM)
b0=$(ticks "$base_pid"); l0=$(ticks "$pid")
sleep "$idle"
b1=$(ticks "$base_pid"); l1=$(ticks "$pid")
brss=$(kib "$base_pid" VmRSS); bhwm=$(kib "$base_pid" VmHWM)
hz=$(getconf CLK_TCK)
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
cpu() { awk -v d="$(($2 - $1))" -v hz="$hz" -v s="$idle" 'BEGIN { printf "%.2f", 100 * d / hz / s }'; }
printf '%-44s %9s %9s %12s\n' "daemon" "RSS MiB" "peak MiB" "idle CPU %"
printf '%-44s %9s %9s %12s\n' "baseline: empty configuration" "$(mib "$brss")" "$(mib "$bhwm")" "$(cpu "$b0" "$b1")"
printf '%-44s %9s %9s %12s\n' "$repos x $tags, $automations automations" "$(mib "$rss")" "$(mib "$hwm")" "$(cpu "$l0" "$l1")"
echo "all $objects objects Ready after $ready_s s (target < 60 s); $pushed commits pushed"
echo "first push of app-0 after $first_push_s s; webhook during the initial pass (sent $hook_after_s s after start, $ready_at_hook/$objects Ready before it): commit on the server after $hook_ms ms (target < 1000 ms)"
# LOG_LEVEL=info SAVE_LOG=/tmp/scale.log keeps the daemon's log for a look at what it did when.
[ -z "${SAVE_LOG:-}" ] || cp "$work/state.log" "$SAVE_LOG"
