#!/usr/bin/env bash
# 1 process × 2 threads (2 shards) against 2 ranks × 1 thread on this machine, alternating, on
# the same pretraining (tiny preset, batch 256, 10 steps); prints each run's img/s, the medians,
# their ratio, and rank 0's report of the gradient sums.   usage: tools/mpi/throughput.sh [ROUNDS] [OBJECTIVE]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; OBJECTIVE=${2:-bootmae}
BIN="$PWD/.build/release/bootmae-train"
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=(mpirun --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo --mca pml ob1)
RUN=(pretrain --objective "$OBJECTIVE" --subset 2560 --batch-size 256 --epochs 1 --max-steps 10)
rate() { sed -n 's/.*"img_per_s": \([0-9.]*\).*/\1/p' "$1"; }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
one=(); two=()
for r in $(seq "$ROUNDS"); do
  "$BIN" "${RUN[@]}" --threads 2 --out "$WORK/one$r" > "$WORK/one$r.log" 2>&1
  one+=("$(rate "$WORK/one$r.log")")
  "${MPI[@]}" -np 2 "$BIN" "${RUN[@]}" --threads 1 --out "$WORK/two$r" > "$WORK/two$r.log" 2>&1
  two+=("$(rate "$WORK/two$r.log")")
  echo "round $r: 1×2 ${one[-1]} img/s, 2×1 ${two[-1]} img/s; $(grep '^mpi:' "$WORK/two$r.log")"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "${one[*]}" "${two[*]}" <<'PY'
import statistics, sys
one = [float(x) for x in sys.argv[1].split()]; two = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(one), statistics.median(two)
print(f"median img/s: 1 process × 2 threads {a:.1f}, 2 ranks × 1 thread {b:.1f}; ratio {b / a:.3f}")
PY
