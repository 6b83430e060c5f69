#!/usr/bin/env bash
# Registry benchmarks on a local Debian docker-registry (127.0.0.1), same run, side by side:
#  1. 1,000 repositories x 100 tags: one `tagpilot scan` of all of them versus
#     `skopeo list-tags` per repository through `xargs -P8`. Target: tagpilot >= 5x faster.
#  2. One 10,000-tag repository: `tagpilot scan` versus `skopeo list-tags`, medians.
#     Target: tagpilot <= 1.2x skopeo's time.
# Tags are seeded on disk (tests/e2e/seed_tags.py); repositories are copies of a template.
#
# usage: bench/registry-vs-skopeo.sh [REPOS=1000] [TAGS=100] [RUNS=7]
set -euo pipefail
cd "$(dirname "$0")/.."
repos=${1:-1000}; tags=${2:-100}; runs=${3:-7}
for tool in docker-registry skopeo curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install docker-registry skopeo curl python3)"; exit 2; }
done
cargo build --release -q -p tagpilot
bin=$PWD/target/release/tagpilot
work=$(mktemp -d); trap 'kill $reg_pid 2>/dev/null; wait $reg_pid 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/config.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/data}}
http: {addr: 127.0.0.1:$port, secret: s}
YAML
docker-registry serve "$work/config.yml" > "$work/reg.log" 2>&1 &
reg_pid=$!
until curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; do sleep 0.05; done
base=http://127.0.0.1:$port
bash tests/e2e/push-tags.sh "$base" template seed
python3 tests/e2e/seed_tags.py "$work/data" template seed 1.0. "$((tags - 1))"
bash tests/e2e/push-tags.sh "$base" big seed
python3 tests/e2e/seed_tags.py "$work/data" big seed 2.0. 9999
repodir=$work/data/docker/registry/v2/repositories
for ((i = 0; i < repos; i++)); do cp -a "$repodir/template" "$repodir/r$i"; done
images=(); for ((i = 0; i < repos; i++)); do images+=("127.0.0.1:$port/r$i"); done
printf '%s\n' "${images[@]}" > "$work/images.txt"

now_ms() { date +%s%3N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "== $repos repositories x $tags tags"
t=(); s=()
for ((r = 0; r < 3; r++)); do
  a=$(now_ms); "$bin" scan "${images[@]}" --insecure --rps 0 --max-concurrent 16 > "$work/tp.out" 2> /dev/null; b=$(now_ms); t+=($((b - a)))
  a=$(now_ms); xargs -P8 -I{} skopeo list-tags --tls-verify=false docker://{} < "$work/images.txt" > "$work/sk.out"; b=$(now_ms); s+=($((b - a)))
done
tm=$(printf '%s\n' "${t[@]}" | median); sm=$(printf '%s\n' "${s[@]}" | median)
echo "tagpilot scan (all repos, one process): median ${tm} ms; repos listed: $(grep -c " $tags tags " "$work/tp.out")"
echo "skopeo list-tags via xargs -P8:         median ${sm} ms; tags listed: $(grep -c '"' "$work/sk.out")"
awk -v t="$tm" -v s="$sm" 'BEGIN { printf "speed-up: %.1fx (target >= 5x)\n", s / t }'

echo "== one repository with 10,000 tags"
t=(); s=()
for ((r = 0; r < runs; r++)); do
  a=$(now_ms); "$bin" scan "127.0.0.1:$port/big" --insecure > /dev/null 2>&1; b=$(now_ms); t+=($((b - a)))
  a=$(now_ms); skopeo list-tags --tls-verify=false "docker://127.0.0.1:$port/big" > /dev/null; b=$(now_ms); s+=($((b - a)))
done
tm=$(printf '%s\n' "${t[@]}" | median); sm=$(printf '%s\n' "${s[@]}" | median)
echo "tagpilot scan: median ${tm} ms over $runs runs ($("$bin" scan "127.0.0.1:$port/big" --insecure 2>/dev/null | wc -l) tags)"
echo "skopeo:        median ${sm} ms over $runs runs"
awk -v t="$tm" -v s="$sm" 'BEGIN { printf "ratio tagpilot/skopeo: %.2f (target <= 1.20)\n", t / s }'
