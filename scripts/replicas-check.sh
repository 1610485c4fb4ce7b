#!/usr/bin/env bash
# Local multi-replica check, run by scripts/test.sh: three bootmae-serve replicas (bundled models,
# --threads 1 each) behind nginx (deploy/nginx/nginx.conf with loopback ports) and Prometheus 2.42
# scraping every replica each second. Under a bounded client load (scripts/replicas_load.py: a fixed
# number of requests from a fixed number of keep-alive connections, with a deadline), one replica gets
# SIGTERM (it drains) and another SIGKILL. It asserts that
#   - every request the client sent was answered 200, and alike by every replica;
#   - the SIGTERMed replica drained and exited 0 within its --drain-timeout;
#   - Prometheus scraped all three, then reports up == 0 for both stopped replicas and up == 1 for
#     the survivor (its HTTP API), and the Prometheus-adapter rule's query (deploy/k8s/monitoring)
#     gives a queue depth for the survivor;
#   - `promtool check metrics` passes on every replica's /metrics (fresh, under load, at the end).
# Everything runs on 127.0.0.1 ports chosen free at start, is started and stopped by PID, and every
# wait has a timeout. BIN=path uses that binary instead of building the debug one.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
source scripts/lib/replicas.sh

REQUESTS=${REQUESTS:-200}          # the debug build serves 5-10 requests/s per replica on one thread
CONCURRENCY=${CONCURRENCY:-6}
# Seconds; the client sends nothing after it and fails. The bound is for a request that never ends, not
# a speed test: an idle two-core machine takes ~50 s, a busy AVX2-only one (a two-thread training beside
# the check, 2026-12-06) served 1.5 requests/s, ~135 s for the 200.
LOAD_DEADLINE=${LOAD_DEADLINE:-300}
DRAIN_TIMEOUT=10
started=$SECONDS

replicas_install
if [ -z "${BIN:-}" ]; then
  swift build --product bootmae-serve >&2
  BIN=.build/debug/bootmae-serve
fi

WORK=$(mktemp -d /tmp/replicas-check.XXXXXX)
PIDS=()
forget() { local keep=() p; for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
cleanup() {
  local rc=$?
  ((${#PIDS[@]})) && stop_pids "${PIDS[@]}"
  if [ "$rc" -ne 0 ]; then
    for f in "$WORK"/replica*.log "$WORK"/prometheus.log "$WORK"/nginx/logs/stderr.log; do
      [ -s "$f" ] && { echo "--- $f (last lines)" >&2; tail -n 15 "$f" >&2; }
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
fail() { echo "replicas-check: FAIL: $*" >&2; exit 1; }

read -r -a PORTS <<< "$(free_ports 5)"
FRONT=${PORTS[3]} PROM=${PORTS[4]}
REPLICAS=("${PORTS[@]:0:3}")

# --- three replicas
RPID=()
for i in 0 1 2; do
  "$BIN" --models-dir models --port "${REPLICAS[$i]}" --threads 1 --drain-timeout "$DRAIN_TIMEOUT" \
    --openapi openapi.yaml 2> "$WORK/replica$i.log" &
  RPID[$i]=$!
  PIDS+=("$!")
done
for i in 0 1 2; do
  wait_http "http://127.0.0.1:${REPLICAS[$i]}/readyz" 60 || fail "replica $i (port ${REPLICAS[$i]}) not ready within 60 s"
done

# --- nginx and Prometheus
start_nginx "$REPO" "$WORK/nginx" "$FRONT" "${REPLICAS[@]}"
PIDS+=("$NGINX_PID")
wait_http "http://127.0.0.1:$FRONT/nginx-health" 10 || fail "nginx did not start"

targets=$(printf "'127.0.0.1:%s', " "${REPLICAS[@]}")
cat > "$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: bootmae
    static_configs:
      - targets: [${targets%, }]
YAML
promtool check config "$WORK/prometheus.yml" >/dev/null || fail "promtool rejects the generated prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prometheus-data" \
  --web.listen-address="127.0.0.1:$PROM" --log.level=warn 2> "$WORK/prometheus.log" &
PIDS+=("$!")
wait_http "http://127.0.0.1:$PROM/-/ready" 30 || fail "Prometheus not ready within 30 s"

# prom QUERY: "instance value" per series of an instant query (Prometheus HTTP API).
prom() {
  curl -fsS -m 5 "http://127.0.0.1:$PROM/api/v1/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["data"]["result"]:
    print(r["metric"].get("instance", "-"), r["value"][1])'
}
# wait_prom QUERY EXPECTED SECONDS: until the query prints exactly EXPECTED.
wait_prom() {
  local deadline=$((SECONDS + $3)) got
  until got=$(prom "$1" 2>/dev/null) && [ "$got" = "$2" ]; do
    ((SECONDS < deadline)) || { echo "replicas-check: '$1' gave '${got:-nothing}', expected '$2'" >&2; return 1; }
    sleep 0.5
  done
}
check_metrics() {  # check_metrics WHEN INDEX...: promtool check metrics on each replica's /metrics
  local when=$1 i
  shift
  for i in "$@"; do
    curl -fsS -m 5 "http://127.0.0.1:${REPLICAS[$i]}/metrics" > "$WORK/metrics$i.txt" || fail "no /metrics from replica $i ($when)"
    promtool check metrics < "$WORK/metrics$i.txt" >&2 || fail "promtool check metrics: replica $i ($when)"
  done
}

check_metrics "fresh" 0 1 2
wait_prom 'count(up{job="bootmae"} == 1)' "- 3" 20 || fail "Prometheus does not scrape all three replicas"
echo "replicas-check: 3 replicas on ${REPLICAS[*]}, nginx on $FRONT, Prometheus on $PROM (ready after $((SECONDS - started)) s)" >&2

# --- load, then SIGTERM one replica and SIGKILL another while it runs
python3 scripts/replicas_load.py --url "http://127.0.0.1:$FRONT" --requests "$REQUESTS" \
  --concurrency "$CONCURRENCY" --deadline "$LOAD_DEADLINE" --progress "$WORK/progress" \
  Tests/Fixtures/fmnist/*.png > "$WORK/load.json" &
LOAD=$!
PIDS+=("$LOAD")
wait_progress() {  # wait_progress N SECONDS: until the client has finished N requests
  local deadline=$((SECONDS + $2))
  while (($(cat "$WORK/progress" 2>/dev/null || echo 0) < $1)); do
    ((SECONDS < deadline)) || fail "the client finished fewer than $1 requests in $2 s"
    sleep 0.1
  done
}
wait_progress $((REQUESTS * 3 / 10)) "$LOAD_DEADLINE"
check_metrics "under load" 0 1 2
kill -TERM "${RPID[0]}"
term_at=$SECONDS
echo "replicas-check: SIGTERM to replica 0 (port ${REPLICAS[0]}) after $(cat "$WORK/progress") requests" >&2
wait_progress $((REQUESTS * 45 / 100)) "$LOAD_DEADLINE"
kill -KILL "${RPID[1]}"
echo "replicas-check: SIGKILL to replica 1 (port ${REPLICAS[1]}) after $(cat "$WORK/progress") requests" >&2
rc=0
wait_exit "${RPID[1]}" 10 || rc=$?
forget "${RPID[1]}"
[ "$rc" -eq 137 ] || fail "replica 1 exited with $rc after SIGKILL, expected 137"

rc=0
wait_exit "$LOAD" $((LOAD_DEADLINE + 45)) || rc=$?
forget "$LOAD"
echo "replicas-check: client: $(cat "$WORK/load.json")" >&2
[ "$rc" -eq 0 ] || fail "the client saw failed or differing requests (exit $rc)"

rc=0
wait_exit "${RPID[0]}" $((DRAIN_TIMEOUT + 5 - (SECONDS - term_at))) || rc=$?
forget "${RPID[0]}"
[ "$rc" -eq 0 ] || fail "the SIGTERMed replica exited with $rc (124: still running), expected a drain and 0"
grep -q "drained; bye" "$WORK/replica0.log" || fail "replica 0 did not log its drain"
echo "replicas-check: replica 0 drained and exited 0 ($(grep -o 'open=[0-9]*' "$WORK/replica0.log" | head -1) connections open at SIGTERM)" >&2

# --- what Prometheus saw
wait_prom "up{instance=\"127.0.0.1:${REPLICAS[1]}\"}" "127.0.0.1:${REPLICAS[1]} 0" 15 || fail "Prometheus does not report the killed replica down"
wait_prom "up{instance=\"127.0.0.1:${REPLICAS[0]}\"}" "127.0.0.1:${REPLICAS[0]} 0" 15 || fail "Prometheus does not report the drained replica down"
wait_prom "up{instance=\"127.0.0.1:${REPLICAS[2]}\"}" "127.0.0.1:${REPLICAS[2]} 1" 5 || fail "Prometheus does not report the survivor up"
scraped=$(prom 'count(count by (instance) (last_over_time(bootmae_images_total[5m])))')
[ "$scraped" = "- 3" ] || fail "Prometheus holds bootmae_images_total of '$scraped' instances, expected 3"
# The HPA's queue-depth metric, through the adapter rule's own query (template filled in by hand).
rule=$(python3 - <<'PY'
import re
text = open("deploy/k8s/monitoring/prometheus-adapter.yaml").read()
query = re.search(r"metricsQuery:\s*'([^']*)'", text).group(1)
print(query.replace("<<.Series>>", "bootmae_queue_depth").replace("<<.LabelMatchers>>", 'job="bootmae"')
           .replace("<<.GroupBy>>", "instance"))
PY
)
depth=$(prom "$rule" | grep "^127.0.0.1:${REPLICAS[2]} ") || fail "the adapter rule's query ($rule) gives nothing for the survivor"
echo "replicas-check: Prometheus: both stopped replicas up == 0, survivor up == 1; adapter query: $depth" >&2
check_metrics "at the end" 2

# --- how nginx spread the requests (informational)
python3 - "$WORK/nginx/logs/access.log" "${REPLICAS[@]}" <<'PY' >&2
import re, sys
lines = open(sys.argv[1]).read().splitlines()
served = {p: 0 for p in sys.argv[2:]}
retried = 0
for line in lines:
    ups = re.search(r"upstream=(\S+(?:, \S+)*) upstream_status", line).group(1).split(", ")
    retried += len(ups) > 1
    port = ups[-1].rsplit(":", 1)[-1]
    served[port] = served.get(port, 0) + 1
print("replicas-check: nginx: %d requests; answered by port: %s; %d retried on another replica"
      % (len(lines), ", ".join(f"{p} {n}" for p, n in served.items()), retried))
PY
echo "replicas-check: OK in $((SECONDS - started)) s" >&2
