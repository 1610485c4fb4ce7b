#!/usr/bin/env bash
# Creates the Python venv used ONLY to (re)generate the committed test fixtures and to run
# benchmarks against PyTorch. The Swift test suite never needs it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${REF_VENV:-$ROOT/.venv-ref}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip
# The +cpu build avoids ~3 GB of CUDA wheels this CPU-only machine never uses.
"$VENV/bin/pip" install -q "torch==2.13.0+cpu" "timm==1.0.31" "safetensors" "numpy" "pillow" "scikit-image"
echo "$VENV"
