#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs the whole test suite (what .ci/run calls).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
swift test --skip-build
# The RESULTS table tool's 84 px rows and goal verdict on run folders written by the test (Python standard library only).
python3 -m unittest discover -s tools/results -p 'test_*.py'
# Training over Open MPI: 2 ranks bit-identical to one process with 2 shards, a killed rank, SIGTERM.
bash scripts/mpi-check.sh
# Black-box checks of the real server: OpenAPI conformance (schemathesis) and a short load run (wrk).
bash scripts/server-checks.sh
# Soak: the server at saturation with valid, invalid and slow clients; no unexpected status, flat RSS and descriptors: 60 s.
bash scripts/soak.sh 60
# Trainer faults (SIGKILL at 4 moments and resume, a full disk during a checkpoint, a vanished dataset file): ~1 min.
bash scripts/fault-check.sh 4
# The deployment manifests, offline: kubernetes-validate --strict, cross-checks, promtool (deploy/).
bash scripts/k8s-validate.sh
# Three replicas behind nginx, scraped by Prometheus: one SIGTERMed, one SIGKILLed under load, no failed request.
bash scripts/replicas-check.sh
# The page at GET / in headless Chromium (Selenium): upload, reconstruction, patch toggles, labels, tokenizer code grids, screenshots.
bash scripts/browser-check.sh
# A short bounded fuzz run of the HTTP request parser (libFuzzer + AddressSanitizer).
bash scripts/fuzz-http.sh 20 > /dev/null 2>&1 || { echo "fuzz-http: the parser fuzzer found a failure (see .build-fuzz/artifacts)" >&2; exit 1; }
# The same for the image decoders (ASan + UBSan on the C code) and the service's JSON / multipart decoding: 30 s each.
bash scripts/fuzz-images.sh 30 > /dev/null 2>&1 || { echo "fuzz-images: the image fuzzer found a failure (see .build-fuzz-decoders/image-artifacts)" >&2; exit 1; }
bash scripts/fuzz-requests.sh 30 > /dev/null 2>&1 || { echo "fuzz-requests: the request fuzzer found a failure (see .build-fuzz-decoders/request-artifacts)" >&2; exit 1; }
