#!/usr/bin/env bash
# Fuzzes the image path (CImageCodecs PNG/JPEG decode → ImageKit resize / crop / normalize → PNG
# round trip) with libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer at exit).
#   scripts/fuzz-images.sh [SECONDS] [more libFuzzer flags...]      (default 60 s)
#   scripts/fuzz-images.sh --long [more libFuzzer flags...]        (1,000,000 executions: scripts/lib/fuzz-args.sh)
# Builds in its own scratch path (.build-fuzz-decoders, shared with the other decoder fuzzer: same flags), starts from the committed image fixtures
# (Tests/Fixtures/images, never written to) and keeps what it learns in .build-fuzz-decoders/image-corpus.
# Our C (CImageCodecs) and Swift code are instrumented; the system libpng / libjpeg-turbo are not
# (ASan still checks every memcpy/memset they make through its interceptors, and our wrappers'
# buffers). A failing input is saved under .build-fuzz-decoders/image-artifacts/; replay it with a normal build:
#   swift run image-decode-fuzz .build-fuzz-decoders/image-artifacts/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/fuzz-args.sh
fuzz_parse_args "$@"

swift build -c debug --scratch-path .build-fuzz-decoders --product image-decode-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DIMAGE_FUZZ -Xswiftc -DREQUEST_FUZZ \
  -Xcc -fsanitize=fuzzer-no-link,address,undefined -Xcc -fno-sanitize-recover=undefined

mkdir -p .build-fuzz-decoders/image-corpus .build-fuzz-decoders/image-artifacts
# libFuzzer reports crashes itself; Swift's backtracer would only slow that down.
SWIFT_BACKTRACE=enable=no UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  exec .build-fuzz-decoders/debug/image-decode-fuzz \
  -max_total_time="$FUZZ_SECONDS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -dict=Tests/Fixtures/image-fuzz.dict -artifact_prefix=.build-fuzz-decoders/image-artifacts/ \
  "${FUZZ_FLAGS[@]}" .build-fuzz-decoders/image-corpus Tests/Fixtures/images
