#!/usr/bin/env bash
# tagpilot next to Renovate, same run, same fixture (issue 17 item 3).
#
# Fixture: Debian's docker-registry on 127.0.0.1 with IMAGES repositories x 30 semver tags
# (1.0.0 … 1.5.4, pushed with curl by tests/e2e/push-tags.sh), and a fleet repository behind
# git daemon with one Deployment per image at 1.0.0, each image line marked for tagpilot.
#   Renovate   `--platform=local --dry-run=lookup` in a working copy of the fleet repository:
#              extracts the images (kubernetes manager), looks every one up, writes nothing.
#              Fresh cache directory per run (cold).
#   tagpilot   `tagpilot run --once` with default settings, fresh state directory (cold: clone,
#              scan, resolve, edit 100 files, commit, push), against a fresh copy of the remote.
# Runs them alternately RUNS times each, checks that both found the same newest version of every
# image, prints wall time and peak RSS (largest process, getrusage) of each and the ratios.
# Targets: tagpilot >= 20x faster and <= 1/10 the memory.
# Renovate and the Node.js it needs (npm package `node`, Renovate 44 wants Node 24) are installed
# from the npm registry into target/bench-renovate if missing.
# usage: bench/vs-renovate.sh [IMAGES=100] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-100}; runs=${2:-3}
root=$PWD
cargo build --release -q -p tagpilot
bin=$root/target/release/tagpilot
rn=$root/target/bench-renovate
if [ ! -x "$rn/node_modules/.bin/renovate" ] || [ ! -x "$rn/node_modules/.bin/node" ]; then
  echo "installing Node.js 24 and Renovate 44 from npm into $rn"
  mkdir -p "$rn"
  npm install --prefix "$rn" --no-audit --no-fund --loglevel=error node@24 renovate@44 > /dev/null
fi
export PATH=$rn/node_modules/.bin:$PATH
echo "renovate $(renovate --version) on node $(node --version); $("$bin" --version)"
. tests/e2e/servers.sh

start_registry
tags=(); for a in 0 1 2 3 4 5; do for b in 0 1 2 3 4; do tags+=("1.$a.$b"); done; done
t0=$(date +%s.%N)
seq 0 $((images - 1)) | xargs -P 8 -I{} bash tests/e2e/push-tags.sh "http://$registry" "team/app-{}" "${tags[@]}"
printf 'fixture: %d images x %d tags pushed in %.1f s\n' "$images" "${#tags[@]}" "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }')"

# The fleet repository, kept pristine; every tagpilot run pushes to a fresh copy of it.
gport=$(free_port)
git init -q --bare -b main "$work/pristine.git"
git clone -q "$work/pristine.git" "$work/fleet" 2> /dev/null
for ((i = 0; i < images; i++)); do
  mkdir -p "$work/fleet/apps/app-$i"
  cat > "$work/fleet/apps/app-$i/deployment.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-$i
  namespace: bench
spec:
  selector:
    matchLabels: {app: app-$i}
  template:
    metadata:
      labels: {app: app-$i}
    spec:
      containers:
        - name: app
          image: $registry/team/app-$i:1.0.0 # {"\$imagepolicy": "bench:app-$i"}
YAML
done
git -C "$work/fleet" checkout -q -b main
git -C "$work/fleet" add -A
git -C "$work/fleet" -c user.name=you -c user.email=you@example.com commit -q -m "fleet"
git -C "$work/fleet" push -q origin main
mkdir -p "$work/srv"
cp -a "$work/pristine.git" "$work/srv/fleet.git"
start_git_daemon "$gport" fleet

# tagpilot's configuration: the guide's objects, one repository and policy per image.
mkdir -p "$work/config"
python3 - "$work/config/bench.yaml" "$images" "$registry" "$gport" <<'PY'
import sys
path, n, registry, gport = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(path, "w") as f:
    f.write(f"""apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {{name: fleet, namespace: bench}}
spec: {{interval: 1m, url: "git://127.0.0.1:{gport}/fleet.git", ref: {{branch: main}}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {{name: fleet, namespace: bench}}
spec:
  interval: 1m
  sourceRef: {{kind: GitRepository, name: fleet}}
  git:
    checkout: {{ref: {{branch: main}}}}
    commit: {{author: {{name: tagpilot, email: tagpilot@example.com}}}}
    push: {{branch: main}}
  update: {{path: ./apps, strategy: Setters}}
""")
    for i in range(n):
        f.write(f"""---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {{name: app-{i}, namespace: bench}}
spec: {{image: {registry}/team/app-{i}, interval: 1m, insecure: true}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {{name: app-{i}, namespace: bench}}
spec:
  imageRepositoryRef: {{name: app-{i}}}
  policy: {{semver: {{range: ">=1.0.0"}}}}
""")
PY

# Renovate's configuration: the kubernetes manager has no default file pattern; the registry
# speaks plain HTTP.
cat > "$work/renovate.json" <<JSON
{
  "onboarding": false,
  "requireConfig": "ignored",
  "enabledManagers": ["kubernetes"],
  "kubernetes": {"managerFilePatterns": ["/\\\\.yaml\$/"]},
  "hostRules": [{"matchHost": "https://$registry", "insecureRegistry": true}]
}
JSON

# measure OUT CMD...: runs CMD, appends "seconds peak_kib" to OUT.
measure() {
  local out=$1; shift
  python3 - "$out" "$@" <<'PY'
import resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w")).returncode
secs = time.monotonic() - t
if rc != 0:
    sys.exit(f"{cmd[0]} exited {rc}; see {out}.log")
with open(out, "a") as f:
    f.write(f"{secs:.3f} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}\n")
PY
}

for ((r = 1; r <= runs; r++)); do
  rm -rf "$work/renovate-cache" "$work/report.json"
  (cd "$work/fleet" && RENOVATE_CONFIG_FILE="$work/renovate.json" LOG_LEVEL=warn \
    measure "$work/renovate.times" renovate --platform=local --dry-run=lookup \
      --cache-dir="$work/renovate-cache" --repository-cache=disabled \
      --report-type=file --report-path="$work/report.json")
  rm -rf "$work/srv/fleet.git" "$work/state"
  cp -a "$work/pristine.git" "$work/srv/fleet.git"
  measure "$work/tagpilot.times" "$bin" run --once --config "$work/config" --state-dir "$work/state"
  echo "run $r: renovate $(tail -1 "$work/renovate.times"), tagpilot $(tail -1 "$work/tagpilot.times") (seconds, peak KiB)"
done

# Both must have found the same newest version of every image.
git clone -q "$work/srv/fleet.git" "$work/after"
[ "$(git -C "$work/after" rev-list --count main)" = 2 ] || { echo "tagpilot did not push one commit"; exit 1; }
python3 - "$work/report.json" "$work/after/apps" "$images" <<'PY'
import json, os, re, sys
report, apps, n = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3])
def key(v): return tuple(int(x) for x in v.split("."))
renovate = {}
for repo in report["repositories"].values():
    for files in repo["packageFiles"].values():
        for pf in files:
            for dep in pf["deps"]:
                # The kubernetes manager also reports each manifest's apiVersion.
                if dep.get("datasource") != "docker":
                    continue
                name = dep["depName"].rsplit("/", 1)[-1]
                versions = [u["newVersion"] for u in dep.get("updates", [])]
                renovate[name] = max(versions, key=key) if versions else dep["currentValue"]
tagpilot = {}
for d in os.listdir(apps):
    text = open(os.path.join(apps, d, "deployment.yaml")).read()
    tagpilot[d] = re.search(r"image: \S+:(\S+) #", text).group(1)
if len(renovate) != n or renovate != tagpilot:
    diff = {k: (renovate.get(k), tagpilot.get(k)) for k in set(renovate) | set(tagpilot)
            if renovate.get(k) != tagpilot.get(k)}
    sys.exit(f"found versions differ (renovate, tagpilot): {dict(list(diff.items())[:5])} "
             f"({len(renovate)} images seen by renovate, {len(tagpilot)} files)")
print(f"same newest version found for all {n} images (e.g. app-0 -> {tagpilot['app-0']})")
PY

python3 - "$work/renovate.times" "$work/tagpilot.times" "$images" <<'PY'
import statistics, sys
def load(f): return [tuple(map(float, l.split())) for l in open(f)]
r, t, n = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
rs, rm = statistics.median(x[0] for x in r), max(x[1] for x in r) / 1024
ts, tm = statistics.median(x[0] for x in t), max(x[1] for x in t) / 1024
print(f"{'':<58}{'wall s (median)':>16}{'peak RSS MiB':>14}")
print(f"{'renovate --platform=local --dry-run=lookup (lookups only)':<58}{rs:>16.2f}{rm:>14.1f}")
print(f"{'tagpilot run --once (scan, resolve, edit, commit, push)':<58}{ts:>16.2f}{tm:>14.1f}")
print(f"tagpilot is {rs / ts:.1f}x faster (target >= 20x) and uses {tm / rm:.3f} of the memory "
      f"(target <= 0.1), {n} images")
PY
