# Shared by scripts/fuzz-http.sh, fuzz-images.sh and fuzz-requests.sh (sourced): their command line.
#   SCRIPT [SECONDS] [libFuzzer flags...]   a bounded run (CI: 20-30 s; default 60 s)
#   SCRIPT --long [libFuzzer flags...]      the long run of docs/RELIABILITY.md: stops after 1,000,000
#                                           executions (at most 4 hours), one process on one core
# Sets FUZZ_SECONDS and FUZZ_FLAGS (the libFuzzer flags to pass before the corpus folders).
FUZZ_LONG_RUNS=1000000
fuzz_parse_args() {
  FUZZ_FLAGS=()
  if [[ ${1:-} == --long ]]; then
    shift
    FUZZ_SECONDS=14400
    FUZZ_FLAGS=(-runs="$FUZZ_LONG_RUNS")
  else
    FUZZ_SECONDS="${1:-60}"
    shift || true
  fi
  FUZZ_FLAGS+=("$@")
}
