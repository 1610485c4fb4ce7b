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
# timm needs torchvision, and PyPI carries torchvision only as the CUDA build, so the matching CUDA
# torch is installed too (~3 GB, used on CPU). Pinned so fixtures regenerate identically.
"$VENV/bin/pip" install -q "torch==2.13.0" "torchvision==0.28.0" "timm==1.0.31" "safetensors" "numpy" "pillow" "scikit-image"
echo "$VENV"
