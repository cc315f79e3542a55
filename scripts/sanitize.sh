#!/usr/bin/env bash
# `make sanitize`: the whole test suite, and kiln infer / eval / bench / train / run on
# static- and dynamic-batch models, built with AddressSanitizer (Swift and C) and
# UndefinedBehaviorSanitizer (the C targets: swiftc has no UBSan on Linux; Swift code traps on
# overflow and out-of-bounds access by itself), in .build-sanitize. Any report fails the run:
# ASan aborts on its first error, UBSan is built not to recover, and each CLI run's stderr is
# checked for a sanitizer line. Timings are in the README's "Safety" section.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH=.build-sanitize
VENV=${KILN_VENV:-$HOME/.cache/kiln/venv}
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
# The Swift runtime's crash backtracer reads memory that ASan then reports, and hangs: off.
export SWIFT_BACKTRACE=enable=no
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
start=$(date +%s)

FLAGS=(-c release --scratch-path "$SCRATCH" --sanitize=address -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=undefined)
echo "sanitize: building with AddressSanitizer and (C) UndefinedBehaviorSanitizer (in $SCRATCH)"
swift build "${FLAGS[@]}" --build-tests
BIN="$(swift build "${FLAGS[@]}" --show-bin-path)"
KILN="$BIN/kiln"

# Every CLI run below: success expected, and nothing from a sanitizer on stderr.
check() {
  local log; log=$(mktemp)
  if ! "$@" >"$log.out" 2>"$log"; then
    echo "sanitize: FAILED: $*" >&2; tail -40 "$log" >&2; exit 1
  fi
  if grep -qE "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|UndefinedBehaviorSanitizer" "$log"; then
    echo "sanitize: REPORT in: $*" >&2; grep -E -A20 "Sanitizer|runtime error" "$log" | head -60 >&2; exit 1
  fi
  rm -f "$log" "$log.out"
}

echo "sanitize: conformance (reference and compiled)"
check bash scripts/conformance.sh "$KILN"

echo "sanitize: the CLI on static- and dynamic-batch models"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
check "$KILN" convert models/resnet8-mnist.kiln -o "$work/r8.onnx" --seed 3
check "$VENV/bin/python" scripts/batch_models.py "$work/r8.onnx" "$work" 23
for v in dynamic fixed1 fixed4 baked1 baked4; do
  for b in 1 7 128; do
    check "$KILN" infer "$work/$v.onnx" "$work/images" --batch "$b" --output "$work/$v-$b.csv"
    check "$KILN" eval "$work/$v.onnx" "$work/images" --batch "$b" --report "$work/$v-$b.json"
  done
  check "$KILN" bench "$work/$v.onnx" --batch 8 --rounds 1 --runs 2 --warmup 1
done
"$VENV/bin/python" -c "import numpy as np; np.save('$work/x5.npy', np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32))"
check "$KILN" run "$work/fixed1.onnx" --input "$work/x5.npy"
check "$KILN" run "$work/baked4.onnx" --input "$work/x5.npy" --reference
check "$KILN" bench models/resnet32-cifar.kiln --batch 16 --rounds 1 --runs 2 --warmup 1
check "$KILN" train --model models/resnet8-mnist.kiln --data data/mnist5k/mnist5k-images-idx3-ubyte.gz --split-first 40 \
  --lt-profile exp --lt-ratio 10 --loss ldam --rule drw --epochs 2 --batch 32 --out "$work/run"
check "$KILN" train --model "$work/fixed1.onnx" --data data/mnist5k/mnist5k-images-idx3-ubyte.gz --split-first 40 \
  --epochs 1 --batch 16 --out "$work/run-fixed1"
check "$KILN" export "$work/run" -o "$work/exported.onnx"
check "$KILN" eval "$work/exported.onnx" "$work/images" --batch 5

echo "sanitize: the Swift test suites (KILN_BIN is the sanitized kiln)"
KILN_BIN="$KILN" KILN_VENV="$VENV" swift test "${FLAGS[@]}" --skip-build

echo "sanitize: every fuzz corpus through the replay tool"
for t in $(scripts/fuzz.sh --list); do check "$BIN/kiln-fuzz" "$t" "fuzz/corpus/$t"; done

echo "sanitize: clean, $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
