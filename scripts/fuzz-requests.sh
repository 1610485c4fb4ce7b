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
source scripts/lib/fuzz-decoders.sh
fuzz_parse_args "$@"
fuzz_decoder request-decode-fuzz request 16384 Tests/Fixtures/request-corpus
