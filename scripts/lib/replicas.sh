# Shared by scripts/replicas-check.sh and bench/replicas (sourced, under `set -euo pipefail`):
# the packages they need, free loopback ports, the nginx config rendered from deploy/nginx/nginx.conf,
# and waits that always end.

REPLICA_PACKAGES=(
  nginx-light   # the load balancer (deploy/nginx/nginx.conf)
  prometheus    # 2.42 on Debian 12: the server and promtool; apt does not start it here
  wrk           # load generator (bench/replicas)
)

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

# Installs whatever of REPLICA_PACKAGES is missing.
replicas_install() { apt_install replicas "${REPLICA_PACKAGES[@]}"; }

# free_ports N: N distinct TCP ports free on 127.0.0.1 right now (held open together while chosen).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

# render_nginx_conf REPO FRONT_PORT REPLICA_PORT...: deploy/nginx/nginx.conf on stdout with the
# `listen` line marked `# front` on FRONT_PORT and one copy of the first `# replica` server line per port.
render_nginx_conf() {
  local repo=$1 front=$2
  shift 2
  awk -v front="$front" -v ports="$*" '
    /# replica$/ {
      if (!done) {
        n = split(ports, p, " ")
        for (i = 1; i <= n; i++) { line = $0; sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" p[i], line); print line }
        done = 1
      }
      next
    }
    /# front$/ { sub(/127\.0\.0\.1:[0-9]+/, "127.0.0.1:" front); print; next }
    { print }' "$repo/deploy/nginx/nginx.conf"
}

# start_nginx REPO DIR FRONT_PORT REPLICA_PORT...: renders the config into DIR, starts nginx in the
# foreground (its own process, in the background of the caller) and sets NGINX_PID.
start_nginx() {
  local repo=$1 dir=$2 front=$3
  shift 3
  mkdir -p "$dir/logs" "$dir/tmp"
  # Workers run as nobody when the master is root: they need the temporary-file folders.
  chmod 755 "$dir" && chmod 777 "$dir/tmp"
  render_nginx_conf "$repo" "$front" "$@" > "$dir/nginx.conf"
  nginx -t -q -c "$dir/nginx.conf" -p "$dir/" -e stderr
  nginx -c "$dir/nginx.conf" -p "$dir/" -e stderr 2> "$dir/logs/stderr.log" &
  NGINX_PID=$!
}

# wait_http URL SECONDS: until URL answers 2xx; returns 1 after SECONDS.
wait_http() {
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fs -m 2 -o /dev/null "$url"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# wait_exit PID SECONDS: reaps PID (a child of this shell) and returns its exit status, or 124 if it
# is still running after SECONDS (then it is left running).
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2)) state rc=0
  while state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) && [ "$state" != Z ]; do
    ((SECONDS < deadline)) || return 124
    sleep 0.1
  done
  { wait "$pid"; } 2>/dev/null || rc=$?
  return "$rc"
}

# stop_pids PID...: SIGTERM each still-running PID, wait up to 5 s for each, then SIGKILL.
stop_pids() {
  local pid rc
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    rc=0
    wait_exit "$pid" 5 2>/dev/null || rc=$?
    if [ "$rc" -eq 124 ]; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
}
