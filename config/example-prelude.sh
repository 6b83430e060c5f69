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
