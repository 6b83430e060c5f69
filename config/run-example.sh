#!/usr/bin/env bash
# Runs the guide's walkthrough end to end on this machine, offline: starts a local registry
# (Debian's docker-registry) and a Git server (git daemon) on 127.0.0.1, pushes podinfo's tags
# 5.0.0-5.0.3, 5.1.0, 6.0.0 and latest, publishes config/clusters/my-cluster as a Git repository
# (image names pointed at the local registry), then runs `tagpilot run --once` on it and shows the
# commit tagpilot pushed. Everything is stopped and removed at the end.
#
# usage: config/run-example.sh [path/to/tagpilot]     (default: builds target/release/tagpilot)
set -euo pipefail
cd "$(dirname "$0")/.."
. config/example-prelude.sh "$@"

# 1. The registry, with podinfo's tags.
start_registry
bash tests/e2e/push-tags.sh "http://$registry" stefanprodan/podinfo 5.0.0 5.0.1 5.0.2 5.0.3 5.1.0 6.0.0 latest
echo "registry $registry/stefanprodan/podinfo: $(curl -s "http://$registry/v2/stefanprodan/podinfo/tags/list")"

# 2. The fleet repository, served by git daemon.
gport=$(free_port)
git init -q --bare -b main "$work/srv/fleet.git"
git clone -q "file://$work/srv/fleet.git" "$work/fleet" 2> /dev/null
mkdir -p "$work/fleet/clusters"
cp -r config/clusters/my-cluster "$work/fleet/clusters/"
localize "$work/fleet/clusters/my-cluster" "git://127.0.0.1:$gport/fleet.git"
git -C "$work/fleet" checkout -q -b main
git -C "$work/fleet" add -A
git -C "$work/fleet" -c user.name=you -c user.email=you@example.com commit -q -m "add podinfo and image automation"
git -C "$work/fleet" push -q origin main
start_git_daemon "$gport" fleet
echo "git repository git://127.0.0.1:$gport/fleet.git"

# 3. tagpilot, once, on the same manifests.
echo; echo "\$ tagpilot run --once --config clusters/my-cluster"
"$bin" run --once --config "$work/fleet/clusters/my-cluster" --state-dir "$work/state"

# 4. What landed in Git.
echo; echo "\$ git log -1 -p   # on the fleet repository"
git -C "$work/fleet" pull -q origin main
git -C "$work/fleet" --no-pager log -1 --format='commit %H%nAuthor: %an <%ae>%n%n%B' -p | sed -n '1,40p'
