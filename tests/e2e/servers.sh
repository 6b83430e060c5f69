# Sourced by the example and benchmark scripts: a scratch directory and background servers on
# 127.0.0.1 that go away when the script exits, however it exits.
#   work          the scratch directory
#   pids          background processes to stop (append with `& pids+=($!)`)
#   free_port     prints a free TCP port
#   start_registry      starts Debian's docker-registry (plain HTTP) and sets `registry`
#   start_git_daemon PORT REPO   serves $work/srv on PORT (pushes allowed), waits for REPO
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_registry() {
  local port
  port=$(free_port)
  printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s/registry}}\nhttp: {addr: 127.0.0.1:%s, secret: s}\n' \
    "$work" "$port" > "$work/registry.yml"
  command -v docker-registry > /dev/null ||
    { echo "docker-registry not found (apt-get install docker-registry)" >&2; exit 1; }
  docker-registry serve "$work/registry.yml" > "$work/registry.log" 2>&1 & pids+=($!)
  # A registry that exits (a bad config, a taken port) must not leave us waiting forever.
  until curl -sf -o /dev/null "http://127.0.0.1:$port/v2/"; do
    kill -0 "${pids[-1]}" 2> /dev/null || { cat "$work/registry.log" >&2; exit 1; }
    sleep 0.05
  done
  registry=127.0.0.1:$port
}

start_git_daemon() { # port repo
  "$(git --exec-path)/git-daemon" --reuseaddr --export-all --enable=receive-pack --listen=127.0.0.1 --port="$1" \
    --base-path="$work/srv" "$work/srv" & pids+=($!)
  until git ls-remote "git://127.0.0.1:$1/$2.git" > /dev/null 2>&1; do sleep 0.05; done
}
