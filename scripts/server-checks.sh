#!/usr/bin/env bash
# Black-box checks of a running bootmae-serve, run by scripts/test.sh after the unit tests:
#  1. every response conforms to openapi.yaml (schemathesis, from PyPI, in a venv this script makes);
#  2. a short, bounded load run over loopback (wrk) with no unexpected errors.
# The server runs on fixture models (small random-weight ViTs) on a loopback port, with --model-control
# (so the load/unload routes are checked against the schema too) and --watch-models, then is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-18181}"
BIN="${BIN:-.build/debug/bootmae-serve}"
VENV="$(realpath -m "${CHECKS_VENV:-.venv-checks}")"
WORK="$(mktemp -d)"
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5"
fi

for spec in "classifier encoders/timm_qkv_avg_head" "bootmae pretrain/bootmae_tiny" "encoder encoders/timm_qkv_cls"; do
  set -- $spec
  mkdir -p "$WORK/models/$1" && cp "Tests/Fixtures/$2/config.json" "Tests/Fixtures/$2/model.safetensors" "$WORK/models/$1/"
done
"$BIN" --models-dir "$WORK/models" --default-model encoder --model-control --watch-models --port "$PORT" --openapi openapi.yaml 2> "$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$WORK/server.log"; echo "server-checks: server did not start" >&2; exit 1; }

echo "server-checks: schemathesis against openapi.yaml" >&2
# positive_data_acceptance is left out: a schema-valid string is rarely a valid PNG/JPEG, so those
# requests rightly get 400. Every other check (status codes, content types, response schemas, no 5xx,
# undeclared methods) applies to every generated request.
(cd "$WORK" && "$VENV/bin/schemathesis" run "$OLDPWD/openapi.yaml" --url "http://127.0.0.1:$PORT" \
  -n "${EXAMPLES:-25}" --checks all --exclude-checks positive_data_acceptance --generation-deterministic --request-timeout 30)

echo "server-checks: wrk load run (loopback, 5 s each)" >&2
body=$(printf '{"input": "%s"}' "$(base64 -w0 Tests/Fixtures/images/rgb.png)")
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body'
LUA
check_wrk() {
  local out="$1"
  echo "$out" | grep -E "Requests/sec|Latency" >&2
  if echo "$out" | grep -qE "Non-2xx|Socket errors: connect [1-9]|read [1-9]|write [1-9]|timeout [1-9]"; then
    echo "$out" >&2; echo "server-checks: unexpected errors under load" >&2; exit 1
  fi
}
check_wrk "$(wrk -t2 -c32 -d5s "http://127.0.0.1:$PORT/healthz")"
check_wrk "$(wrk -t2 -c16 -d5s -s "$WORK/post.lua" "http://127.0.0.1:$PORT/v1/embeddings")"
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "server-checks: server not ready after the load" >&2; exit 1; }
echo "server-checks: OK" >&2
