#!/usr/bin/env bash
# Git benchmark: a generated repository with 20,000 files and 2,000 commits behind git daemon.
# Time from "policy changed" to "commit pushed":
#   tagpilot: one warm clone, then a round per change (fetch, reset, setters, commit, push);
#   baseline: what Flux does each time: git clone --depth 1, edit, commit, push.
# Same run, RUNS changes each; prints both medians. Target: tagpilot >= 5x faster.
# usage: bench/git-warm-vs-clone.sh [FILES=20000] [COMMITS=2000] [RUNS=15]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-20000}; commits=${2:-2000}; runs=${3:-15}
cargo build --release -q -p tagpilot-git --example round
bin=$PWD/target/release/examples/round
work=$(mktemp -d); trap 'kill $daemon_pid 2>/dev/null; rm -rf "$work"' EXIT
git init -q --bare -b main "$work/srv/repo.git"
python3 - "$files" "$commits" > "$work/stream" <<'PY'
import sys
files, commits = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
def blob(mark, data):
    out.write(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))
marker = b'image: ghcr.io/stefanprodan/podinfo:5.0.0 # {"$imagepolicy": "flux-system:podinfo"}\n'
blob(1, marker)
for i in range(files):
    blob(10 + i, b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  key: value-%d\n" % (i, i))
t = 1700000000
for c in range(commits):
    msg = b"commit %d" % c
    out.write(b"commit refs/heads/main\ncommitter Bench <b@example.com> %d +0000\ndata %d\n%s\n" % (t + c, len(msg), msg))
    if c == 0:
        out.write(b"M 100644 :1 apps/podinfo/deployment.yaml\n")
        for i in range(files):
            out.write(b"M 100644 :%d apps/cm/%d/cm-%d.yaml\n" % (10 + i, i // 500, i))
    else:
        data = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%d\ndata:\n  key: changed-%d\n" % (c, c)
        out.write(b"M 100644 inline apps/cm/%d/cm-%d.yaml\ndata %d\n%s\n" % (c // 500, c, len(data), data))
PY
git -C "$work/srv/repo.git" fast-import --quiet < "$work/stream"
git -C "$work/srv/repo.git" config receive.denyNonFastForwards true
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$(git --exec-path)/git-daemon" --reuseaddr --export-all --enable=receive-pack --listen=127.0.0.1 --port="$port" \
  --base-path="$work/srv" "$work/srv" & daemon_pid=$!
until git ls-remote "git://127.0.0.1:$port/repo.git" > /dev/null 2>&1; do sleep 0.1; done
url="git://127.0.0.1:$port/repo.git"
echo "repository: $(git -C "$work/srv/repo.git" ls-tree -r main | wc -l) files, $(git -C "$work/srv/repo.git" rev-list --count main) commits"

# tagpilot: the warm clone is made once (as the daemon does at start), then one round per change.
"$bin" "$work/cache" "$url" main apps 5.0.1 > /dev/null
tags=(); for ((r = 0; r < runs; r++)); do tags+=("6.$r.0"); done
"$bin" "$work/cache" "$url" main apps "${tags[@]}" > "$work/tagpilot.ms"

# Baseline: Flux's way, a fresh shallow clone per change.
for ((r = 0; r < runs; r++)); do
  a=$(date +%s%N)
  d="$work/flux-$r"
  git clone -q --depth 1 --branch main "$url" "$d"
  sed -i "s/podinfo:[0-9.]* #/podinfo:7.$r.0 #/" "$d/apps/podinfo/deployment.yaml"
  git -C "$d" -c user.name=flux -c user.email=flux@example.com commit -q -am "ghcr.io/stefanprodan/podinfo:7.$r.0"
  git -C "$d" push -q origin main
  rm -rf "$d"
  b=$(date +%s%N); echo $(( (b - a) / 1000000 )) >> "$work/baseline.ms"
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
tm=$(median < "$work/tagpilot.ms"); bm=$(median < "$work/baseline.ms")
echo "tagpilot warm round:         median ${tm} ms over $runs changes"
echo "clone --depth 1/commit/push: median ${bm} ms over $runs changes"
awk -v t="$tm" -v b="$bm" 'BEGIN { printf "speed-up: %.1fx (target >= 5x)\n", b / t }'
