#!/usr/bin/env bash
# The page at GET / in a real browser, run by scripts/test.sh: Debian's chromium + chromium-driver
# (apt, installed when missing) driven headless by Selenium (PyPI, in a venv under the repo, git-ignored).
# bootmae-serve runs on the bundled models plus two tokenizer fixtures on a loopback port with --api-key,
# is stopped on exit, and the whole check is bounded in time (BROWSER_CHECK_TIMEOUT, 150 s by default).
# The fixtures are one-step PeCo tokenizer runs (scripts/lib/peco-fixtures.sh, shared with
# server-checks.sh): a 7×7 grid (28 px gray, patch 4) and a 16×16 one (64 px RGB, patch 4), both with 64 codes.
#   scripts/browser-check.sh [--screenshot FILE]   # FILE: also save the desktop screenshot (docs/page.png)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/peco-fixtures.sh
PORT="${PORT:-18191}"
BIN="${BIN:-.build/debug/bootmae-serve}"
TRAIN_BIN="${TRAIN_BIN:-.build/debug/bootmae-train}"
VENV="$(realpath -m "${BROWSER_VENV:-.venv-browser}")"
SHOT=""
if [ "${1:-}" = "--screenshot" ]; then SHOT="$(realpath -m "$2")"; fi
WORK="$(mktemp -d)"
SERVER=""
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

source scripts/lib/apt.sh
apt_install --with-recommends browser-check chromium chromium-driver python3-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import selenium" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "selenium==4.27.1"
fi
for b in "$BIN" "$TRAIN_BIN"; do [ -x "$b" ] || { echo "browser-check: $b is missing; run swift build first" >&2; exit 1; }; done

# The served folder: the bundled models (linked) and the tokenizer fixtures.
mkdir -p "$WORK/models"
for m in models/*/; do ln -s "$PWD/${m%/}" "$WORK/models/"; done
FIXTURE_DIR="$WORK" FIXTURE_CALLER=browser-check
peco_tokenizer_fixture "$WORK/models/peco-tokenizer-fixture-7" --img-size 28
peco_tokenizer_fixture "$WORK/models/peco-tokenizer-fixture-16" --img-size 64 --channels 3

KEY="browser-check-$$"
"$BIN" --models-dir "$WORK/models" --port "$PORT" --threads 1 --api-key "$KEY" 2> "$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { cat "$WORK/server.log" >&2; echo "browser-check: server did not start" >&2; exit 1; }

echo "browser-check: headless chromium against http://127.0.0.1:$PORT/" >&2
# Selenium is told where chromedriver is, so it never tries to download one.
SE_OFFLINE=true timeout "${BROWSER_CHECK_TIMEOUT:-150}" "$VENV/bin/python" scripts/browser_check.py \
  "http://127.0.0.1:$PORT/" "$KEY" "$WORK" "$SHOT" || {
  status=$?
  echo "--- server log ---" >&2; tail -n 30 "$WORK/server.log" >&2
  [ "$status" = 124 ] && echo "browser-check: timed out" >&2
  echo "browser-check: FAILED" >&2
  exit 1
}
echo "browser-check: OK" >&2
