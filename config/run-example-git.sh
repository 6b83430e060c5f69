#!/usr/bin/env bash
# The guide's flow with the manifests in Git, as Flux users have it: every step is a commit
# pushed to the fleet repository, and a running tagpilot daemon applies it.
#   1. the image policy is committed          -> tagpilot picks it up and pushes podinfo 5.0.3
#   2. the semver range is changed in Git      -> tagpilot writes 5.0.2 (the guide's rollback)
#   3. `suspend: true` is committed, 5.0.4 is pushed to the registry -> nothing is pushed
# Offline: Debian's docker-registry and git daemon on 127.0.0.1, removed at the end.
#
# usage: config/run-example-git.sh [path/to/tagpilot]   (default: builds target/release/tagpilot)
set -euo pipefail
cd "$(dirname "$0")/.."
. config/example-prelude.sh "$@"

start_registry
bash tests/e2e/push-tags.sh "http://$registry" stefanprodan/podinfo 5.0.0 5.0.1 5.0.2 5.0.3 5.1.0 6.0.0 latest

# The fleet repository: the Deployment only, to begin with.
gport=$(free_port)
git init -q --bare -b main "$work/srv/fleet.git"
git clone -q "file://$work/srv/fleet.git" "$work/fleet" 2> /dev/null
git -C "$work/fleet" checkout -q -b main
mkdir -p "$work/fleet/clusters/my-cluster"
cp config/clusters/my-cluster/podinfo-deployment.yaml "$work/fleet/clusters/my-cluster/"
sed -i "s#ghcr.io/stefanprodan/podinfo#$registry/stefanprodan/podinfo#" "$work/fleet/clusters/my-cluster/"*.yaml
commit() { # message (on top of what tagpilot pushed meanwhile)
  git -C "$work/fleet" add -A
  git -C "$work/fleet" -c user.name=you -c user.email=you@example.com commit -q -m "$1"
  if git -C "$work/fleet" ls-remote --exit-code -q origin main > /dev/null; then
    git -C "$work/fleet" -c user.name=you -c user.email=you@example.com pull -q --rebase origin main
  fi
  git -C "$work/fleet" push -q origin main
  echo "  pushed: $1"
}
commit "add podinfo"
start_git_daemon "$gport" fleet
url=git://127.0.0.1:$gport/fleet.git
deployed() { git -C "$work/srv/fleet.git" show main:clusters/my-cluster/podinfo-deployment.yaml | grep -o 'podinfo:[^ ]*'; }
wait_for() { # tag
  for _ in $(seq 150); do deployed | grep -q "podinfo:$1\$" && { echo "  main now deploys $(deployed)"; return; }; sleep 0.2; done
  echo "timed out waiting for $1"; cat "$work/daemon.log"; exit 1
}

# tagpilot as a daemon, configured only by the fleet repository (fetched every 2 s here).
api=127.0.0.1:$(free_port)
mkdir -p "$work/local"
echo "\$ tagpilot run --source-url $url --source-branch main --source-path ./clusters/my-cluster --source-interval 2s"
"$bin" run --config "$work/local" --state-dir "$work/state" --api-address "$api" --webhook-address "" \
  --source-url "$url" --source-branch main --source-path ./clusters/my-cluster --source-interval 2s \
  > "$work/daemon.log" 2>&1 & pids+=($!)

echo; echo "1. Commit the image repository, policy and automation"
for f in podinfo-registry.yaml podinfo-policy.yaml flux-system-automation.yaml; do
  cp "config/clusters/my-cluster/$f" "$work/fleet/clusters/my-cluster/"
done
localize "$work/fleet/clusters/my-cluster" "$url"
commit "add image automation"
wait_for 5.0.3

echo; echo "2. Roll back by changing the semver range in Git"
sed -i "s#range: .*#range: '>=5.0.0 <5.0.3'#" "$work/fleet/clusters/my-cluster/podinfo-policy.yaml"
commit "podinfo: roll back below 5.0.3"
wait_for 5.0.2

echo; echo "3. Incident: suspend the automation in Git, then a new release arrives"
sed -i "s#range: .*#range: 5.0.x#" "$work/fleet/clusters/my-cluster/podinfo-policy.yaml"
sed -i "s#^spec:#spec:\n  suspend: true#" "$work/fleet/clusters/my-cluster/flux-system-automation.yaml"
commit "suspend image updates"
for _ in $(seq 100); do curl -s "http://$api/api/v1/objects" | grep -q '"suspended":true' && break; sleep 0.2; done
bash tests/e2e/push-tags.sh "http://$registry" stefanprodan/podinfo 5.0.4
"$bin" reconcile image repository podinfo --api-address "$api" 2>&1 | tail -1
"$bin" get image policy --api-address "$api"
echo "  main still deploys $(deployed) (suspended in Git)"
"$bin" get image update --api-address "$api"
