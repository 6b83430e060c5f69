# Sourced by the example scripts (from the repository root, with the script's arguments):
# installs docker-registry when missing, sets `bin` (the given tagpilot, else a release
# build) and starts the scratch directory and server helpers of tests/e2e/servers.sh.
if ! command -v docker-registry > /dev/null; then
  echo "installing docker-registry (Debian package) for the local registry"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq docker-registry curl > /dev/null
fi
bin=${1:-}
if [ -z "$bin" ]; then cargo build --release -q -p tagpilot; bin=$PWD/target/release/tagpilot; fi
. tests/e2e/servers.sh

# localize DIR GIT_URL: the example's manifests in DIR point at the local registry (plain HTTP,
# hence `insecure`) and at the local git daemon (no credentials) instead of GitHub.
localize() {
  sed -i "s#ghcr.io/stefanprodan/podinfo#$registry/stefanprodan/podinfo#" "$1"/*.yaml
  if [ -f "$1/podinfo-registry.yaml" ] && ! grep -q 'insecure: true' "$1/podinfo-registry.yaml"; then
    sed -i "s#  interval: 1m0s#  interval: 1m0s\n  insecure: true#" "$1/podinfo-registry.yaml"
  fi
  cat > "$1/flux-system-source.yaml" <<YAML
# The Git repository the automation writes to (here: the local git daemon, no credentials).
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: flux-system
  namespace: flux-system
spec:
  interval: 1m0s
  ref:
    branch: main
  url: $2
YAML
}
