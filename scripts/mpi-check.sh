#!/usr/bin/env bash
# Multi-process training checks with Open MPI on loopback (what scripts/test.sh runs after the
# Swift tests; needs openmpi-bin + libopenmpi-dev from scripts/setup.sh):
#   (a) 2 ranks × 1 thread train bootmae and mae pretraining and fine-tuning to the same
#       checkpoint, tensor for tensor and bit for bit, as one process with 2 shards (--threads 2);
#   (b) killing one rank mid-run ends the job with Open MPI's message naming the rank, the
#       checkpoint stays intact, and --resume with 2 ranks reaches the uninterrupted run's final
#       checkpoint bit for bit;
#   (c) where network namespaces can be made (root, iproute2; skipped otherwise or with
#       --no-netns): the same as (a) for bootmae with the two ranks on two "hosts", network
#       namespaces joined by a veth pair, the second launched through `ip netns exec`.
# Every process is started and ended by its PID and every run is bounded by `timeout`.
#   usage: scripts/mpi-check.sh [--no-netns] [--keep]     (work folder: .build/mpi-check)
set -euo pipefail
cd "$(dirname "$0")/.."

NETNS=1; KEEP=0
for a in "$@"; do
  case "$a" in
    --no-netns) NETNS=0 ;;
    --keep) KEEP=1 ;;
    *) echo "usage: $0 [--no-netns] [--keep]" >&2; exit 64 ;;
  esac
done

command -v mpirun >/dev/null || { echo "mpi-check: mpirun not found: run scripts/setup.sh (openmpi-bin, libopenmpi-dev)" >&2; exit 1; }
swift build -c release --product bootmae-train 2>&1 | grep -E "error|warning: |Compiling bootmae|Build of" || true
BIN="$PWD/.build/release/bootmae-train"
SAME="python3 $PWD/tools/mpi/same_tensors.py"
WORK="$PWD/.build/mpi-check"
rm -rf "$WORK"; mkdir -p "$WORK"
LIMIT=300   # seconds per run

if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# Loopback TCP only (no shared-memory or InfiniBand transports), more ranks than cores allowed.
# On SIGTERM, or when a rank dies, mpirun waits odls_base_sigkill_timeout seconds (default 1),
# sends the ranks SIGTERM, and SIGKILLs them the same time later: the default is long enough here
# for a step and a checkpoint (docs/SCALING.md: raise it for larger models).
MPI=(mpirun --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo --mca oob_tcp_if_include lo --mca pml ob1)
SMALL=(--subset 256 --batch-size 64 --epochs 2 --max-steps 6)

failures=0
pass() { echo "mpi-check: PASS $*"; }
fail() { echo "mpi-check: FAIL $*" >&2; failures=$((failures + 1)); }

# One process, 2 data-parallel shards, and 2 ranks × 1 thread: the same flags otherwise.
one() { local out=$1; shift; timeout $LIMIT "$BIN" "$@" --threads 2 --out "$WORK/$out" > "$WORK/$out.log" 2>&1; }
two() { local out=$1; shift; timeout $LIMIT "${MPI[@]}" -np 2 "$BIN" "$@" --threads 1 --out "$WORK/$out" > "$WORK/$out.log" 2>&1; }
same() {   # label, run A, run B
  if $SAME "$WORK/$2/checkpoint.safetensors" "$WORK/$3/checkpoint.safetensors" > "$WORK/$1.same" 2>&1; then
    pass "$1: $(tail -1 "$WORK/$1.same")"
  else
    fail "$1: $(cat "$WORK/$1.same")"
  fi
}

# (a) bit-identity: pretraining with every objective (iBOT: two crops per image, the centres summed across ranks), and fine-tuning from the bootmae run.
for objective in bootmae mae ibot; do
  one "$objective-1proc" pretrain --objective "$objective" "${SMALL[@]}" && two "$objective-2ranks" pretrain --objective "$objective" "${SMALL[@]}" \
    && same "pretrain $objective, 2 ranks = 1 process × 2 shards" "$objective-1proc" "$objective-2ranks" \
    || fail "pretrain $objective did not run (see $WORK/$objective-*.log)"
done
# 3 steps stay inside the first epoch: its end would add a test-set evaluation (rank 0, 1 thread).
FT=(--subset 256 --batch-size 64 --epochs 2 --max-steps 3)
one finetune-1proc finetune --init-from "$WORK/bootmae-1proc" "${FT[@]}" && two finetune-2ranks finetune --init-from "$WORK/bootmae-1proc" "${FT[@]}" \
  && same "finetune, 2 ranks = 1 process × 2 shards" finetune-1proc finetune-2ranks \
  || fail "finetune did not run (see $WORK/finetune-*.log)"
# Only rank 0 writes: one header line and one result, one metrics line per logged step.
[ "$(grep -c '^pretrain bootmae:' "$WORK/bootmae-2ranks.log")" = 1 ] && [ "$(wc -l < "$WORK/bootmae-2ranks/metrics.jsonl")" = "$(wc -l < "$WORK/bootmae-1proc/metrics.jsonl")" ] \
  && pass "rank 0 alone writes the log and metrics" || fail "ranks other than 0 wrote to the log or metrics"

# (b) a rank killed mid-run: the job ends with a message naming it, the checkpoint is intact, and
# --resume with 2 ranks ends where an uninterrupted run ends.
LONG=(pretrain --objective mae --subset 2048 --batch-size 64 --epochs 1 --checkpoint-every 4)
one kill-reference "${LONG[@]}" || fail "the uninterrupted reference run failed (see $WORK/kill-reference.log)"
timeout $LIMIT "${MPI[@]}" -np 2 "$BIN" "${LONG[@]}" --threads 1 --out "$WORK/kill" > "$WORK/kill.log" 2>&1 &
job=$!   # timeout → mpirun → the ranks
victim=""
for _ in $(seq 600); do   # up to 60 s for the first checkpoint
  if [ -f "$WORK/kill/checkpoint.safetensors" ]; then
    for child in $(pgrep -P "$(pgrep -P "$job")"); do
      [ "$(tr '\0' '\n' < "/proc/$child/environ" | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')" = 1 ] && victim=$child
    done
    break
  fi
  sleep 0.1
done
if [ -n "$victim" ]; then kill -KILL "$victim"; fi
status=0; wait "$job" || status=$?
if [ -z "$victim" ]; then
  fail "rank death: no checkpoint appeared or rank 1 was not found (see $WORK/kill.log)"
elif [ -f "$WORK/kill/result.json" ]; then
  fail "rank death: the run finished before rank 1 was killed (inconclusive; the machine may be idle-fast — raise --subset)"
elif [ "$status" -ne 0 ] && grep -q "process rank 1 .* exited on signal 9" "$WORK/kill.log"; then
  pass "rank death: the job ended (mpirun status $status) saying \"$(grep -o 'process rank 1 .* exited on signal 9 (Killed)' "$WORK/kill.log" | head -1)\""
  if timeout $LIMIT "${MPI[@]}" -np 2 "$BIN" pretrain --resume --threads 1 --out "$WORK/kill" > "$WORK/kill-resume.log" 2>&1; then
    same "rank death: --resume with 2 ranks = the uninterrupted run" kill-reference kill
  else
    fail "rank death: --resume failed (see $WORK/kill-resume.log)"
  fi
else
  fail "rank death: mpirun status $status without the expected message (see $WORK/kill.log)"
fi

# SIGTERM to mpirun: every rank stops after the same step, rank 0 saves that step, and --resume
# reaches the uninterrupted run's final checkpoint.
timeout $LIMIT "${MPI[@]}" -np 2 "$BIN" "${LONG[@]}" --threads 1 --out "$WORK/term" > "$WORK/term.log" 2>&1 &
job=$!
for _ in $(seq 600); do [ -f "$WORK/term/checkpoint.safetensors" ] && break; sleep 0.1; done
kill -TERM "$(pgrep -P "$job")"
status=0; wait "$job" || status=$?
saved=$(tr '\r' '\n' < "$WORK/term.log" | sed -n 's/^stopped at step \([0-9]*\); checkpoint saved.*/\1/p')
if [ -f "$WORK/term/result.json" ] && [ -n "$saved" ] && grep -q "\"step\":\"$saved\"" <(head -c 4096 "$WORK/term/checkpoint.safetensors" | tr -d ' '); then
  pass "SIGTERM to mpirun: both ranks stopped after step $saved, saved by rank 0 (mpirun status $status)"
  if timeout $LIMIT "${MPI[@]}" -np 2 "$BIN" pretrain --resume --threads 1 --out "$WORK/term" > "$WORK/term-resume.log" 2>&1; then
    same "SIGTERM: --resume with 2 ranks = the uninterrupted run" kill-reference term
  else
    fail "SIGTERM: --resume failed (see $WORK/term-resume.log)"
  fi
else
  fail "SIGTERM to mpirun: no consistent stop checkpoint (status $status, see $WORK/term.log)"
fi

# (c) two "hosts": network namespaces joined by a veth pair; mpirun reaches the second one through
# `ip netns exec` instead of ssh (plm_rsh_agent), and the ranks talk TCP over the veth link.
probe="bmprobe$$"
if [ "$NETNS" = 1 ] && [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && ip netns add "$probe" 2>/dev/null; then
  ip netns del "$probe"
  bash scripts/mpi-netns.sh "$WORK" "$BIN" && same "two network namespaces, 2 ranks = 1 process × 2 shards" bootmae-1proc netns \
    || fail "netns run failed (see $WORK/netns.log)"
elif [ "$NETNS" = 1 ]; then
  echo "mpi-check: SKIP two network namespaces (needs root and a working 'ip netns add')"
fi

[ "$KEEP" = 1 ] || rm -rf "$WORK"/*/checkpoint.safetensors
if [ "$failures" -gt 0 ]; then echo "mpi-check: $failures check(s) failed" >&2; exit 1; fi
echo "mpi-check: all checks passed"
