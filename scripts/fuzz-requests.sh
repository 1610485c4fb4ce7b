#!/usr/bin/env bash
# Fuzzes the service's request decoding (JSON bodies of /v1/embeddings, /v1/classifications and
# /v1/reconstructions with base64 / data-URI inputs and query fallbacks; multipart/form-data bodies)
# with libFuzzer + AddressSanitizer (+ LeakSanitizer at exit); C code in the build also gets UBSan.
# Every error must come back as a 4xx API error. Input format: Sources/request-decode-fuzz/RequestFuzz.swift.
#   scripts/fuzz-requests.sh [SECONDS] [more libFuzzer flags...]      (default 60 s)
#   scripts/fuzz-requests.sh --long [more libFuzzer flags...]        (1,000,000 executions: scripts/lib/fuzz-args.sh)
# Builds in its own scratch path (.build-fuzz-decoders, shared with the other decoder fuzzer: same flags), starts from the committed seeds
# (Tests/Fixtures/request-corpus, never written to) and keeps what it learns in .build-fuzz-decoders/request-corpus.
# A failing input is saved under .build-fuzz-decoders/request-artifacts/; replay it with a normal build:
#   swift run request-decode-fuzz .build-fuzz-decoders/request-artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/fuzz-args.sh
fuzz_parse_args "$@"

swift build -c debug --scratch-path .build-fuzz-decoders --product request-decode-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DIMAGE_FUZZ -Xswiftc -DREQUEST_FUZZ \
  -Xcc -fsanitize=fuzzer-no-link,address,undefined -Xcc -fno-sanitize-recover=undefined

mkdir -p .build-fuzz-decoders/request-corpus .build-fuzz-decoders/request-artifacts
# libFuzzer reports crashes itself; Swift's backtracer would only slow that down.
SWIFT_BACKTRACE=enable=no UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  exec .build-fuzz-decoders/debug/request-decode-fuzz \
  -max_total_time="$FUZZ_SECONDS" -max_len=16384 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -dict=Tests/Fixtures/request-fuzz.dict -artifact_prefix=.build-fuzz-decoders/request-artifacts/ \
  "${FUZZ_FLAGS[@]}" .build-fuzz-decoders/request-corpus Tests/Fixtures/request-corpus
