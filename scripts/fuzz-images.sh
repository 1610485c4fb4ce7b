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
source scripts/lib/fuzz-decoders.sh
fuzz_parse_args "$@"
fuzz_decoder image-decode-fuzz image 65536 Tests/Fixtures/images
