#!/usr/bin/env bash
# Black-box checks of a running bootmae-serve, run by scripts/test.sh after the unit tests:
#  1. every response conforms to openapi.yaml (schemathesis, from PyPI, in a venv this script makes);
#  2. a short, bounded load run over loopback (wrk) with no unexpected errors.
# The server runs on fixture models (small random-weight ViTs) on a loopback port, with --model-control
# (so the load/unload routes are checked against the schema too) and --watch-models, then is stopped.
# The models cover every kind of answer: an encoder (the default), a classifier, BootMAE, LoMaR
# (relative position bias; its pretraining export and a fine-tuned classifier), and PeCo: one
# tokenizer (the only one, so /v1/tokens without 'model' answers 200), a stage 2 trained on it, and
# a stage 2 whose tokenizer is not served (its reconstructions are the 503 tokenizer_not_loaded).
# The PeCo models are one-step runs trained and exported here (scripts/lib/peco-fixtures.sh, ~10 s).
# Schemathesis fills most generated 'model' and 'input' values with served ids and valid images (its
# config, written below), so every model's 200 answers are checked too.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/peco-fixtures.sh
PORT="${PORT:-18181}"
BIN="${BIN:-.build/debug/bootmae-serve}"
TRAIN_BIN="${TRAIN_BIN:-.build/debug/bootmae-train}"
VENV="$(realpath -m "${CHECKS_VENV:-.venv-checks}")"
WORK="$(mktemp -d)"
SERVER=""
trap 'if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi; rm -rf "$WORK"' EXIT
for b in "$BIN" "$TRAIN_BIN"; do [ -x "$b" ] || { echo "server-checks: $b is missing; run swift build first" >&2; exit 1; }; done

source scripts/lib/apt.sh
apt_install server-checks wrk python3-venv
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==4.32.5"
fi

for spec in "classifier encoders/timm_qkv_avg_head" "bootmae pretrain/bootmae_tiny" "encoder encoders/timm_qkv_cls" \
            "lomar pretrain/lomar_tiny" "lomar-classifier encoders/lomar_rpe_finetune"; do
  set -- $spec
  mkdir -p "$WORK/models/$1" && cp "Tests/Fixtures/$2/config.json" "Tests/Fixtures/$2/model.safetensors" "$WORK/models/$1/"
done
FIXTURE_DIR="$WORK" FIXTURE_CALLER=server-checks
peco_tokenizer_fixture "$WORK/models/peco-tokenizer" --img-size 28
peco_stage2_fixture "$WORK/models/peco" "$WORK/models/peco-tokenizer"
# The orphan's tokenizer: the same export under a name the server does not serve.
mkdir -p "$WORK/unserved" && cp -r "$WORK/models/peco-tokenizer" "$WORK/unserved/peco-tokenizer-elsewhere"
peco_stage2_fixture "$WORK/models/peco-orphan" "$WORK/unserved/peco-tokenizer-elsewhere"
"$BIN" --models-dir "$WORK/models" --default-model encoder --model-control --watch-models --port "$PORT" --openapi openapi.yaml 2> "$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$WORK/server.log"; echo "server-checks: server did not start" >&2; exit 1; }

echo "server-checks: schemathesis against openapi.yaml" >&2
# Left alone, a generated 'model' is never a served id and a generated image rarely decodes, so the
# models' own answers would go unchecked. Its config (written here) fills 'model' (query or JSON)
# with a served id 80% of the time and a JSON 'input' with a valid image (28-px grayscale, a colour
# JPEG) 90%. Each route draws from its own list of the ids, the models it is about first (a
# dictionary's first entries are drawn most often): every kind of model's 200s, and the 503
# `tokenizer_not_loaded` of the stage 2 without its tokenizer, which not_a_server_error then allows
# on /v1/reconstructions only (the body is still checked against ErrorResponse).
served_first() {  # ID...: the served ids as a TOML list, these first
  { printf '%s\n' "$@"; ls "$WORK/models" | grep -vxF -f <(printf '%s\n' "$@"); } | sed 's/.*/"&"/' | paste -sd, -
}
{
  echo "[dictionaries.images]"
  echo "values = [\"$(base64 -w0 Tests/Fixtures/images/gray28.png)\", \"$(base64 -w0 Tests/Fixtures/images/rgb_progressive.jpg)\"]"
  echo "[parameters]"
  echo '"body.input" = { dictionary = "images", probability = 0.9 }'
  echo '"body.input[*]" = { dictionary = "images", probability = 0.9 }'
  for route in "embeddings lomar peco peco-tokenizer lomar-classifier" "classifications lomar-classifier classifier" \
               "reconstructions peco lomar peco-orphan bootmae" "tokens peco-tokenizer peco"; do
    set -- $route; op=$1; shift
    echo "[dictionaries.$op-models]"
    echo "values = [$(served_first "$@")]"
    echo "[[operations]]"
    echo "include-name = \"POST /v1/$op\""
    echo "parameters = { \"query.model\" = { dictionary = \"$op-models\", probability = 0.8 }, \"body.model\" = { dictionary = \"$op-models\", probability = 0.8 } }"
    if [ "$op" = reconstructions ]; then echo 'checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]'; fi
  done
} > "$WORK/schemathesis.toml"
# positive_data_acceptance is left out: a schema-valid string is still mostly not a valid PNG/JPEG,
# so those requests rightly get 400 (and schemathesis warns "Schema validation mismatch" for the four
# image-taking operations: the expected consequence, not a failure). Every other check (status codes, content types, response
# schemas, no 5xx, undeclared methods) applies to every generated request. SCHEMATHESIS_REPORT=FILE
# keeps every exchange as a HAR file.
(cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$OLDPWD/openapi.yaml" \
  --url "http://127.0.0.1:$PORT" -n "${EXAMPLES:-25}" --checks all --exclude-checks positive_data_acceptance \
  --generation-deterministic --request-timeout 30 ${SCHEMATHESIS_REPORT:+--report har --report-har-path "$SCHEMATHESIS_REPORT"})

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
