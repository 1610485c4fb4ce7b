# Shared by scripts/fuzz-images.sh and fuzz-requests.sh (sourced, after fuzz-args.sh's fuzz_parse_args):
# the decoder fuzzers build with the same flags into one scratch path (.build-fuzz-decoders) and run alike.
#   fuzz_decoder PRODUCT NAME MAX_LEN SEEDS
# builds PRODUCT with libFuzzer + ASan (+ UBSan for C), then runs it for FUZZ_SECONDS with FUZZ_FLAGS,
# the dictionary Tests/Fixtures/NAME-fuzz.dict, inputs up to MAX_LEN bytes, learning into
# .build-fuzz-decoders/NAME-corpus from the committed SEEDS folder (never written to); a failing input
# lands in .build-fuzz-decoders/NAME-artifacts/.
fuzz_decoder() {
  local product=$1 name=$2 max_len=$3 seeds=$4 out=.build-fuzz-decoders
  swift build -c debug --scratch-path "$out" --product "$product" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -DIMAGE_FUZZ -Xswiftc -DREQUEST_FUZZ \
    -Xcc -fsanitize=fuzzer-no-link,address,undefined -Xcc -fno-sanitize-recover=undefined
  mkdir -p "$out/$name-corpus" "$out/$name-artifacts"
  # libFuzzer reports crashes itself; Swift's backtracer would only slow that down.
  SWIFT_BACKTRACE=enable=no UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
    exec "$out/debug/$product" \
    -max_total_time="$FUZZ_SECONDS" -max_len="$max_len" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -dict="Tests/Fixtures/$name-fuzz.dict" -artifact_prefix="$out/$name-artifacts/" \
    "${FUZZ_FLAGS[@]}" "$out/$name-corpus" "$seeds"
}
