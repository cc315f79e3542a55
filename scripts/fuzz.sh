#!/usr/bin/env bash
# Fuzzes one of Kiln's loaders with libFuzzer + AddressSanitizer.
#
#   scripts/fuzz.sh TARGET [SECONDS] [extra libFuzzer flags…]   fuzz for SECONDS (default 60)
#   scripts/fuzz.sh TARGET -runs=N                              or for N inputs
#   scripts/fuzz.sh --regress                                   every corpus, then FUZZ_REGRESS_SECONDS
#                                                               (default 10) of fuzzing each
#   scripts/fuzz.sh --list                                      the targets
#
# Targets (Sources/KilnFuzz/Fuzz.swift): onnx, text, npy, pb, png, jpeg, checkpoint, metadata.
# The build goes to .build-fuzz (swift build -c release with AddressSanitizer and libFuzzer's
# coverage instrumentation, linked with libFuzzer's runtime). New
# inputs that reach new code are added to the work corpus .build-fuzz/corpus/TARGET (seeded
# from fuzz/corpus/TARGET, the committed one); a crash, a hang (an input over 1 s) or an
# allocation over 1 GiB (-malloc_limit_mb) stops the run and leaves crash-*/timeout-*/oom-*
# in .build-fuzz/artifacts/TARGET. Fix the bug, then copy the input into fuzz/corpus/TARGET
# so every later regression run replays it. A summary line per run goes to
# .build-fuzz/fuzz-log.tsv (target, inputs, seconds, edges, exit code).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(onnx text npy pb png jpeg checkpoint metadata)
SCRATCH=.build-fuzz
BIN="$SCRATCH/release/kiln-fuzz"

if [ "${1:-}" = "--list" ]; then printf '%s\n' "${TARGETS[@]}"; exit 0; fi
if [ $# -lt 1 ]; then sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 64; fi

build() {
  echo "fuzz: building kiln-fuzz with libFuzzer and AddressSanitizer (in $SCRATCH)" >&2
  # libFuzzer's own main would clash with the executable's (SwiftPM points main at the
  # target's entry), so the Swift code gets libFuzzer's coverage instrumentation and the link
  # gets the runtime without main; Fuzz.swift's main calls LLVMFuzzerRunDriver.
  local swiftc; swiftc=$(readlink -f "$(command -v swiftc)")
  local nomain; nomain=$(ls "$(dirname "$swiftc")"/../lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a 2>/dev/null | head -1)
  [ -n "$nomain" ] || { echo "fuzz: libclang_rt.fuzzer_no_main not found beside $swiftc" >&2; exit 1; }
  swift build -c release --scratch-path "$SCRATCH" --product kiln-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    -Xswiftc -DKILN_LIBFUZZER -Xcc -fsanitize=fuzzer-no-link,address -Xcc -DKILN_LIBFUZZER \
    -Xlinker "$nomain" -Xlinker -lstdc++ >&2
}

# fuzz TARGET LIBFUZZER_FLAGS…: one libFuzzer run over the work corpus and the committed one.
fuzz() {
  local t="$1"; shift
  local work="$SCRATCH/corpus/$t" art="$SCRATCH/artifacts/$t"
  mkdir -p "$work" "$art"
  local log; log=$(mktemp)
  local start; start=$(date +%s)
  set +e
  KILN_FUZZ_TARGET="$t" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1" \
    "$BIN" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$art/" "$@" "$work" "fuzz/corpus/$t" 2>&1 | tee "$log" | grep --line-buffered -E "^(#[0-9]+[[:space:]]+(DONE|INITED|pulse)|==|SUMMARY|stat::)" >&2
  local rc=${PIPESTATUS[0]}
  set -e
  local runs edges
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  edges=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "${runs:-0}" "$(( $(date +%s) - start ))" "${edges:-0}" "$rc" >> "$SCRATCH/fuzz-log.tsv"
  echo "fuzz: $t: ${runs:-0} inputs in $(( $(date +%s) - start )) s, ${edges:-0} edges, exit $rc" >&2
  rm -f "$log"
  return "$rc"
}

build
if [ "$1" = "--regress" ]; then
  # Every committed input first (-runs=0 replays the corpus and stops), then a short fixed-
  # seed fuzzing run of each target.
  for t in "${TARGETS[@]}"; do
    fuzz "$t" -runs=0
    fuzz "$t" -max_total_time="${FUZZ_REGRESS_SECONDS:-10}" -seed=1
  done
  exit 0
fi

t="$1"; shift
printf '%s\n' "${TARGETS[@]}" | grep -qx "$t" || { echo "fuzz: unknown target '$t' (scripts/fuzz.sh --list)" >&2; exit 64; }
if [ $# -ge 1 ] && [[ "$1" =~ ^[0-9]+$ ]]; then
  seconds="$1"; shift
  fuzz "$t" -max_total_time="$seconds" "$@"
elif [ $# -ge 1 ]; then
  fuzz "$t" "$@"
else
  fuzz "$t" -max_total_time=60
fi
