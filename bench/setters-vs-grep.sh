#!/usr/bin/env bash
# Setters benchmark: `tagpilot update --dry-run` on a generated tree of 10,000 YAML files
# (1,000 with markers) versus `grep -rl '"$imagepolicy"'` on the same tree, same run.
# Target: tagpilot within 2x of grep. Prints both medians and the ratio.
#
# usage: bench/setters-vs-grep.sh [FILES=10000] [MARKED=1000] [RUNS=15]
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-10000}; marked=${2:-1000}; runs=${3:-15}
cargo build --release -q -p tagpilot
bin=target/release/tagpilot
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 bench/gen_tree.py "$work/tree" "$files" "$marked"
latest=()
for ((i = 0; i < files; i += files / marked)); do
  latest+=(--latest "flux-system/app-$i=registry.example.com/team-$((i % 50))/app-$i:1.1.0")
done
# Warm the page cache for both.
grep -rl '"$imagepolicy"' "$work/tree" > /dev/null
"$bin" update "$work/tree" --dry-run "${latest[@]}" 2> /dev/null

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_ms() { local s e; s=$(date +%s%N); "$@" > /dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
g=(); t=()
for ((r = 0; r < runs; r++)); do
  g+=("$(time_ms grep -rl '"$imagepolicy"' "$work/tree")")
  t+=("$(time_ms "$bin" update "$work/tree" --dry-run "${latest[@]}")")
done
gm=$(printf '%s\n' "${g[@]}" | median); tm=$(printf '%s\n' "${t[@]}" | median)
changed=$("$bin" update "$work/tree" --dry-run "${latest[@]}" 2>&1 | tail -1)
echo "tree: $files files, $marked marked; tagpilot: $changed"
echo "grep -rl           median ${gm} ms over $runs runs"
echo "tagpilot --dry-run median ${tm} ms over $runs runs"
awk -v t="$tm" -v g="$gm" 'BEGIN { r = (g > 0 ? t / g : 0); printf "ratio tagpilot/grep: %.2f (target <= 2.00)\n", r }'
