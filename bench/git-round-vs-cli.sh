#!/usr/bin/env bash
# The warm Git round (issue 17 item 2) next to the git CLI doing the same work on a warm clone,
# same run, same server. A fleet repository behind git daemon with FILES marked Deployments
# (plus EXTRA unmarked files, so that whole-tree walks show); each round changes the tag in every
# marked file:
#   tagpilot   crates/git/examples/round.rs: fetch, reset, setters over the path, commit, push
#              (the daemon's round, one warm clone kept across rounds)
#   git CLI    git fetch, git reset --hard origin/main, sed -i over the marked files, git commit
#              -a, git push (a warm clone kept across rounds; sed does no YAML work)
# RUNS rounds each, alternately; prints both medians and the ratio.
# usage: bench/git-round-vs-cli.sh [FILES=100] [EXTRA=0] [RUNS=15]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-100}; extra=${2:-0}; runs=${3:-15}
cargo build --release -q -p tagpilot-git --example round
bin=$PWD/target/release/examples/round
. tests/e2e/servers.sh
mkdir -p "$work/srv"
git init -q --bare -b main "$work/srv/fleet.git"
python3 - "$files" "$extra" <<'PY' | git -C "$work/srv/fleet.git" fast-import --quiet
import sys
files, extra = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
out.write(b"commit refs/heads/main\ncommitter Bench <b@example.com> 1700000000 +0000\ndata 5\nfleet\n")
def put(path, body):
    out.write(b"M 100644 inline %s\ndata %d\n%s\n" % (path, len(body), body))
for i in range(files):
    put(b"apps/app-%d/deployment.yaml" % i, b"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
spec:
  template:
    spec:
      containers:
        - name: app
          image: ghcr.io/stefanprodan/podinfo:5.0.0 # {"$imagepolicy": "flux-system:podinfo"}
""" % i)
for i in range(extra):
    put(b"other/%d/cm-%d.yaml" % (i // 500, i), b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\n" % i)
PY
port=$(free_port)
start_git_daemon "$port" fleet
url="git://127.0.0.1:$port/fleet.git"

# Both warm clones are made before the clock starts, as the daemon makes its clone at start.
"$bin" "$work/cache" "$url" main apps 5.0.1 > /dev/null
git clone -q "$url" "$work/cli"
git -C "$work/cli" config user.name cli; git -C "$work/cli" config user.email cli@example.com
: > "$work/tagpilot.ms"; : > "$work/cli.ms"
for ((r = 0; r < runs; r++)); do
  "$bin" "$work/cache" "$url" main apps "6.$r.0" >> "$work/tagpilot.ms"
  a=$(date +%s%N)
  (
    cd "$work/cli"
    git fetch -q origin
    git reset -q --hard origin/main
    git grep -l '"$imagepolicy": "flux-system:podinfo"' -- apps | xargs sed -i "s/podinfo:[0-9.]* #/podinfo:7.$r.0 #/"
    git commit -qam "ghcr.io/stefanprodan/podinfo:7.$r.0"
    git push -q origin HEAD:main
  )
  echo $((($(date +%s%N) - a) / 1000000)) >> "$work/cli.ms"
done
changed=$(git -C "$work/srv/fleet.git" diff --stat HEAD~1 HEAD | tail -1)
echo "repository: $files marked files + $extra others; last round: $changed"
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
tm=$(median < "$work/tagpilot.ms"); cm=$(median < "$work/cli.ms")
echo "tagpilot warm round:                       median ${tm} ms over $runs rounds"
echo "git CLI fetch/reset/sed/commit/push, warm: median ${cm} ms over $runs rounds"
awk -v t="$tm" -v c="$cm" 'BEGIN { printf "tagpilot / git CLI: %.2f\n", t / c }'
