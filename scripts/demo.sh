#!/usr/bin/env bash
# The demo: what Kiln can do today, on the networks it ships: verify and summarise them,
# export to ONNX, run compiled and reference kernels and onnxruntime on the same batch, and
# a short benchmark.
# Usage: scripts/demo.sh [path/to/kiln]   (`make demo` passes the freshly built binary)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-.build/release/kiln}
OUT=${DEMO_OUT:-out/demo}
mkdir -p "$OUT"

echo "== Kiln demo: the shipped networks, verified and summarised =="
for model in models/*.kiln; do
  name=$(basename "$model" .kiln)
  echo
  echo "-- $model"
  "$KILN" dump "$model" --stats | tail -n 4
  "$KILN" dump "$model" --format dot > "$OUT/$name.dot"
  if command -v dot >/dev/null 2>&1; then
    dot -Tsvg "$OUT/$name.dot" -o "$OUT/$name.svg"
    echo "   graph drawn to $OUT/$name.svg"
  fi
done

echo
echo "-- The text IR round-trips: dump → parse → dump is identical for every model"
for model in models/*.kiln; do
  "$KILN" dump "$model" > "$OUT/roundtrip.kiln"
  cmp -s "$model" "$OUT/roundtrip.kiln" && echo "   $model: identical" || { echo "   $model: DIFFERS"; exit 1; }
done
echo
echo "First lines of models/resnet8-mnist.kiln:"
head -n 12 models/resnet8-mnist.kiln

echo
echo "== ONNX out and back, and the compiled path =="
VENV=${KILN_VENV:-$HOME/.cache/kiln/venv}
"$KILN" convert models/resnet32-cifar.kiln -o "$OUT/resnet32.onnx" --seed 7
"$VENV/bin/python" - "$OUT" <<'PY'
import sys, numpy as np
np.save(sys.argv[1] + "/batch.npy", np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32))
PY
"$KILN" run "$OUT/resnet32.onnx" --input "image=$OUT/batch.npy" --output "$OUT/compiled" > "$OUT/run.txt"
head -n 3 "$OUT/run.txt"
"$KILN" run "$OUT/resnet32.onnx" --input "image=$OUT/batch.npy" --output "$OUT/reference" --reference > /dev/null
"$VENV/bin/python" scripts/ort_check.py "$OUT/resnet32.onnx" "$OUT/onnxruntime" "image=$OUT/batch.npy"
"$VENV/bin/python" - "$OUT" <<'PY'
import sys, numpy as np
d = sys.argv[1]
ref = np.load(d + "/reference/linear.npy")
for name in ("compiled", "onnxruntime"):
    got = np.load(d + "/" + name + "/linear.npy")
    print(f"   {name:12s} vs reference kernels: max relative error {np.abs(got - ref).max() / np.abs(ref).max():.2e}")
PY

echo
echo "== A short benchmark against onnxruntime (see BENCHMARKS.md for the full table) =="
"$KILN" bench models/resnet32-cifar.kiln --batch 32 --threads "$(nproc)" --rounds 2 --runs 3 --compare-ort 2>/dev/null
