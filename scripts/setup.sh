#!/usr/bin/env bash
# Installs the system packages bootmae-swift needs on a fresh Debian 12 machine.
# Idempotent: re-running it only checks that everything is present.
set -euo pipefail

PACKAGES=(
  pkg-config
  libopenblas-dev       # cblas_sgemm
  libpng-dev            # PNG decode/encode
  libjpeg62-turbo-dev   # JPEG decode
  zlib1g-dev            # gunzip for the IDX dataset files
  dataset-fashion-mnist # training/eval data (IDX files under /usr/share/datasets/fashion-mnist)
  openmpi-bin           # mpirun: training over several processes/machines (scripts/mpi-check.sh)
  libopenmpi-dev        # mpi.h + pkg-config ompi-c (optional at build time: without it, one process only)
  g++                   # bench/compare: torch.compile's inductor peer compiles C++ (else it reports "unavailable")
  python3-venv          # the test tools' venvs (schemathesis, selenium, kubernetes-validate) and tools/reference
)

source "$(dirname "$0")/lib/apt.sh"
apt_install setup "${PACKAGES[@]}"

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: the Swift toolchain (6.x) is required on PATH (e.g. /opt/swift/usr/bin)" >&2
  exit 1
fi
