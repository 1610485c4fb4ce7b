#!/usr/bin/env bash
# Fuzzes the HTTP request parser with libFuzzer + AddressSanitizer (+ LeakSanitizer) for a bounded time.
#   scripts/fuzz-http.sh [SECONDS] [more libFuzzer flags...]      (default 60 s)
#   scripts/fuzz-http.sh --long [more libFuzzer flags...]        (1,000,000 executions: scripts/lib/fuzz-args.sh)
# Builds in its own scratch path (.build-fuzz), starts from the committed seed corpus
# (Tests/Fixtures/http-corpus, never written to) and keeps what it learns in .build-fuzz/http-corpus.
# A failing input is saved under .build-fuzz/artifacts/; replay it with a normal build:
#   swift run http-parser-fuzz .build-fuzz/artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/fuzz-args.sh
fuzz_parse_args "$@"

swift build -c debug --scratch-path .build-fuzz --product http-parser-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DHTTP_FUZZ

mkdir -p .build-fuzz/http-corpus .build-fuzz/artifacts
# libFuzzer reports crashes itself; Swift's backtracer would only slow that down.
SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1 exec .build-fuzz/debug/http-parser-fuzz \
  -max_total_time="$FUZZ_SECONDS" -max_len=4096 -timeout=10 -print_final_stats=1 \
  -dict=Tests/Fixtures/http-fuzz.dict -artifact_prefix=.build-fuzz/artifacts/ \
  "${FUZZ_FLAGS[@]}" .build-fuzz/http-corpus Tests/Fixtures/http-corpus
