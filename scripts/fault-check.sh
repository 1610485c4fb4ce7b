#!/usr/bin/env bash
# Trainer fault checks (issue 24), each against the real bootmae-train binary:
#  1. SIGKILL: a short pretrain run (5 steps per epoch, 4 epochs for 4 kills, 13 for 20; a checkpoint after every
#     step) is killed KILLS times, 0-2 steps after each start, half of them at a random moment of the next step
#     and half the moment a checkpoint write is under way, and resumed
#     each time (the identical command line plus --resume; a fresh start if no checkpoint was written
#     yet). After every kill each file of the run folder must parse; at the end the checkpoint must
#     equal an uninterrupted run's tensor by tensor, bit for bit (optimizer moments included), its
#     metrics.jsonl log the same steps with the same losses, and no temporary file may be left.
#  2. Full disk: the run folder on a small tmpfs (mounted here; root needed) that holds one checkpoint
#     but not a second: the run must end with a message naming the file and the cause, the previous
#     checkpoint must be intact, and with room again --resume must finish the run.
#  3. A dataset file that disappears mid-run: a clear error naming it (exit 1), not a crash.
#
#   scripts/fault-check.sh            # CI: 4 kills (about 2 minutes on 2 busy cores)
#   scripts/fault-check.sh 20         # the long version (docs/RELIABILITY.md); --long says the same
#   FAULT_SEED=123 scripts/fault-check.sh 20   # repeat one sequence of kill moments
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS="${1:-4}"
[[ $KILLS == --long ]] && KILLS=20   # the issue's number
SEED="${FAULT_SEED:-$(( $(date +%s) % 32768 ))}"
RANDOM=$SEED
BIN="$(realpath "${BIN:-.build/debug/bootmae-train}")"
FILES="python3 $PWD/tools/fault/run_files.py"
WORK="$(mktemp -d /tmp/bootmae-fault.XXXXXX)"
MOUNTED=""
cleanup() {
  jobs -p | xargs -r kill -9 2>/dev/null || true
  [[ -n $MOUNTED ]] && umount "$MOUNTED" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[[ -x $BIN ]] || { echo "fault-check: $BIN is not built (swift build --build-tests)" >&2; exit 1; }
say() { echo "fault-check: $*" >&2; }
die() { say "FAIL: $*"; exit 1; }
finished() { [[ -f $1/result.json ]] && grep -q '"stoppedEarly" : false' "$1/result.json"; }

DATA="$PWD/Tests/Fixtures/datasets/idx-gz"   # 20 images: 5 steps of 4 per epoch
EPOCHS=$(( (3 * KILLS + 4) / 5 + 1 ))   # each kill lets at most 3 steps pass: every kill lands in a running trainer
ARGS=(--data "$DATA" --epochs "$EPOCHS" --batch-size 4 --img-size 16 --checkpoint-every 1 --threads 2 --seed 7)

# ---- 1. SIGKILL at random moments, resumed each time ------------------------------------------
say "seed $SEED; $KILLS kills"
"$BIN" pretrain --out "$WORK/reference" "${ARGS[@]}" > /dev/null 2> "$WORK/reference.log" || { cat "$WORK/reference.log" >&2; die "the uninterrupted run failed"; }
run="$WORK/killed"
kills=0 in_write=0 starts=0
# Waits until N more checkpoints were renamed into place (each has a new inode), or the trainer ends.
steps_pass() {
  local n=$1 seen=0 last cur
  last=$(stat -c %i "$run/checkpoint.safetensors" 2>/dev/null || echo none)
  while (( seen < n )) && kill -0 "$pid" 2>/dev/null; do
    sleep 0.02
    cur=$(stat -c %i "$run/checkpoint.safetensors" 2>/dev/null || echo none)
    if [[ $cur != "$last" ]]; then seen=$((seen + 1)); last=$cur; fi
  done
}
while ! finished "$run"; do
  (( starts++ < 4 * KILLS + 10 )) || die "the run does not finish (see $run)"
  if [[ -f $run/checkpoint.safetensors ]]; then mode=(--resume); else mode=(); fi
  "$BIN" pretrain --out "$run" "${ARGS[@]}" "${mode[@]}" > /dev/null 2>> "$WORK/killed.log" &
  pid=$!
  if (( kills < KILLS )); then
    # 0-2 more checkpoints (steps) first, so the kills spread over the whole run.
    steps_pass $(( RANDOM % 3 ))
    if (( kills % 2 )); then
      # The moment a checkpoint write is under way: its temporary file exists.
      for _ in $(seq 1 20000); do
        compgen -G "$run/.checkpoint.safetensors.tmp-*" > /dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.001
      done
    else
      # A random moment of the next step (its compute, its checkpoint write or the start-up).
      sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", 0.5 * r / 32767 }')"
    fi
    if kill -9 "$pid" 2>/dev/null; then
      kills=$((kills + 1))
      if compgen -G "$run/.checkpoint.safetensors.tmp-*" > /dev/null; then in_write=$((in_write + 1)); fi
    fi
  fi
  exec 3>&2 2>/dev/null   # no "Killed" job notices
  status=0; wait "$pid" || status=$?
  exec 2>&3 3>&-
  (( status == 0 || status == 137 )) || { tail -5 "$WORK/killed.log" >&2; die "the trainer exited with $status"; }
  $FILES readable "$run" || die "the run folder is unreadable after kill $kills"
done
(( kills == KILLS )) || die "only $kills of $KILLS kills landed before the run finished"
$FILES same "$WORK/reference/checkpoint.safetensors" "$run/checkpoint.safetensors" >&2 \
  || die "the resumed run's checkpoint differs from the uninterrupted run's"
! compgen -G "$run/.*tmp-*" > /dev/null || die "temporary files left in the run folder: $(ls -a "$run")"
$FILES same-steps "$WORK/reference" "$run" >&2 || die "metrics.jsonl of the resumed run differs from the uninterrupted run's"
say "OK: $kills kills ($in_write during a checkpoint write), $starts starts; final checkpoint bit-identical to the uninterrupted run, metrics.jsonl the same steps and losses"

# ---- 2. A full disk during a checkpoint -------------------------------------------------------
disk="$WORK/disk"; mkdir -p "$disk"
checkpoint_bytes=$(stat -c %s "$WORK/reference/checkpoint.safetensors")
size_kb=$(( checkpoint_bytes * 3 / 2 / 1024 ))   # one checkpoint fits, the next one's temporary file does not
if mount -t tmpfs -o "size=${size_kb}k" tmpfs "$disk" 2>/dev/null; then
  MOUNTED="$disk"
  full=(--data "$DATA" --epochs 1 --batch-size 4 --img-size 16 --checkpoint-every 2 --threads 2 --seed 7)
  status=0; "$BIN" pretrain --out "$disk/run" "${full[@]}" > /dev/null 2> "$WORK/full.log" || status=$?
  (( status == 1 )) || { cat "$WORK/full.log" >&2; die "a full disk ended with status $status, expected 1"; }
  grep -q "No space left on device" "$WORK/full.log" && grep -q "checkpoint.safetensors is intact" "$WORK/full.log" \
    || { cat "$WORK/full.log" >&2; die "the message does not say what happened"; }
  $FILES readable "$disk/run" || die "the run folder is unreadable after the full disk"
  [[ $($FILES meta "$disk/run/checkpoint.safetensors" step) == 2 ]] || die "the previous checkpoint (step 2) is not intact"
  ! compgen -G "$disk/run/.*tmp-*" > /dev/null || die "a temporary file was left on the full disk"
  mount -o remount,size=$(( size_kb * 4 ))k "$disk"
  "$BIN" pretrain --out "$disk/run" "${full[@]}" --resume > /dev/null 2>> "$WORK/full.log" || { cat "$WORK/full.log" >&2; die "resuming after the full disk failed"; }
  finished "$disk/run" || die "the run did not finish after the disk had room again"
  say "OK: full disk: \"$(grep -m1 -o 'error: .*' "$WORK/full.log" | cut -c1-160)…\"; previous checkpoint intact; resumed and finished"
  umount "$disk"; MOUNTED=""
else
  say "SKIPPED: full disk (mounting a tmpfs needs root / CAP_SYS_ADMIN)"
fi

# ---- 3. A dataset file that disappears mid-run ------------------------------------------------
photos="$WORK/photos"; mkdir -p "$photos"
pngs=(Tests/Fixtures/fmnist/*.png)
for i in $(seq 0 39); do cp "${pngs[i % ${#pngs[@]}]}" "$photos/$i.png"; done
"$BIN" pretrain --data "$photos" --out "$WORK/vanish" --epochs 3 --batch-size 4 --checkpoint-every 1 --threads 2 > /dev/null 2> "$WORK/vanish.log" &
pid=$!
for _ in $(seq 1 600); do [[ -f $WORK/vanish/checkpoint.safetensors ]] && break; sleep 0.05; done
rm -f "$photos"/1*.png   # 11 of the 40 files
status=0; wait "$pid" || status=$?
(( status == 1 )) || { cat "$WORK/vanish.log" >&2; die "a vanished dataset file ended with status $status, expected 1"; }
grep -q "could not be loaded" "$WORK/vanish.log" && grep -q "No such file or directory" "$WORK/vanish.log" \
  || { cat "$WORK/vanish.log" >&2; die "the message does not say which file went missing"; }
$FILES readable "$WORK/vanish" || die "the run folder is unreadable after the dataset error"
# Resuming on the shrunken folder trains on, but says its batches are no longer an uninterrupted run's.
"$BIN" pretrain --data "$photos" --out "$WORK/vanish" --epochs 3 --batch-size 4 --checkpoint-every 1 --threads 2 --resume --max-steps 1 \
  > /dev/null 2> "$WORK/vanish-resume.log" || { cat "$WORK/vanish-resume.log" >&2; die "resuming on the shrunken dataset failed"; }
grep -q "now has 29 training images, the run's checkpoint was written with 40" "$WORK/vanish-resume.log" \
  || { cat "$WORK/vanish-resume.log" >&2; die "resuming on the shrunken dataset does not warn"; }
say "OK: vanished dataset files: \"$(grep -m1 -o 'error: .*' "$WORK/vanish.log" | cut -c1-160)…\"; --resume warns that the dataset changed"
say "OK"
