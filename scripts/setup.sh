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
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: the Swift toolchain (6.x) is required on PATH (e.g. /opt/swift/usr/bin)" >&2
  exit 1
fi
