#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds the release binaries and runs the main job.
# Until the server and the trained models land, the main job embeds a bundled photo with a small
# test model (random weights from Tests/Fixtures/encoders), printing one JSON line per image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product bootmae-train >&2
MODEL="${MODEL:-Tests/Fixtures/encoders/timm_qkv_cls}"
if [ "$#" -eq 0 ]; then set -- Tests/Fixtures/images/photo_512x384.jpg; fi
exec .build/release/bootmae-train embed --model "$MODEL" "$@"
