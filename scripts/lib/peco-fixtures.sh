# Shared by scripts/server-checks.sh and browser-check.sh (sourced, under `set -euo pipefail`): PeCo
# fixture models, one-step runs on the repository's 20-image IDX fixture exported by bootmae-train
# (seeded, one thread: the same weights and codes every time, only the files' metadata names the
# scratch run folder; a few seconds each in a debug build).
# Set before calling: TRAIN_BIN (the trainer), FIXTURE_DIR (a scratch folder for the run folders and
# fixtures.log) and FIXTURE_CALLER (the script's name, for the error message).
#   peco_tokenizer_fixture OUT [pretrain flags...]
#       a tokenizer (64 codes, a 1-block encoder and decoder, tiny preset), exported to the model
#       directory OUT; the flags set its size (--img-size 28 is a 7×7 code grid of 28-px grayscale).
#   peco_stage2_fixture OUT TOKENIZER
#       a stage-2 model (masked code prediction, tiny preset) trained one step on the codes of the
#       exported tokenizer TOKENIZER (its input is the tokenizer's), exported to OUT: its config.json
#       names TOKENIZER's directory name and records the hash of its weights, so it reconstructs
#       where that tokenizer is served under that name.

peco_fixture_data=Tests/Fixtures/datasets/idx-plain

# Runs one fixture command, its output kept in FIXTURE_DIR/fixtures.log; a failure prints the log and ends the script.
peco_fixture_run() {
  local what="$1"; shift
  timeout 120 "$@" >> "$FIXTURE_DIR/fixtures.log" 2>&1 ||
    { cat "$FIXTURE_DIR/fixtures.log" >&2; echo "$FIXTURE_CALLER: could not write the PeCo fixture $what" >&2; exit 1; }
}

peco_tokenizer_fixture() {
  local out="$1"; shift
  local run="$FIXTURE_DIR/run-$(basename "$out")"
  peco_fixture_run "$out" "$TRAIN_BIN" pretrain --objective peco-tokenizer --preset tiny "$@" --data "$peco_fixture_data" \
    --lambda-perceptual 0 --codebook-size 64 --tokenizer-depth 1 --batch-size 2 --epochs 1 --max-steps 1 --seed 0 --threads 1 \
    --out "$run"
  peco_fixture_run "$out" "$TRAIN_BIN" export --run "$run" --out "$out"
}

peco_stage2_fixture() {
  local out="$1" tokenizer="$2"
  local run="$FIXTURE_DIR/run-$(basename "$out")"
  peco_fixture_run "$out" "$TRAIN_BIN" pretrain --objective peco --tokenizer "$tokenizer" --preset tiny --data "$peco_fixture_data" \
    --batch-size 2 --epochs 1 --max-steps 1 --seed 0 --threads 1 --out "$run"
  peco_fixture_run "$out" "$TRAIN_BIN" export --run "$run" --out "$out"
}
