#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds the release binaries and starts the service on the models
# bundled in models/ (the default is bootmae-vit-tiny-fmnist; bootmae-vit-tiny-fmnist-cls classifies;
# models/README.md lists them all).
# Extra arguments go to bootmae-serve, e.g. scripts/run.sh --port 9000 (see bootmae-serve --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product bootmae-serve >&2
exec .build/release/bootmae-serve --models-dir models "$@"
