#!/usr/bin/env bash
# The demo: long-tailed MNIST (the 5k sample in data/mnist5k, ratio-100 exp profile) trained
# with plain cross-entropy and with LDAM-DRW, side by side; the LDAM-DRW model exported to
# ONNX and checked against onnxruntime; then the shipped networks verified and compared.
# Usage: scripts/demo.sh [path/to/kiln]   (`make demo` passes the freshly built binary)
# DEMO_EPOCHS (default 100) and DEMO_SEED (default 0) change the training runs.
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-.build/release/kiln}
OUT=${DEMO_OUT:-out/demo}
EPOCHS=${DEMO_EPOCHS:-100}
SEED=${DEMO_SEED:-0}
VENV=${KILN_VENV:-$HOME/.cache/kiln/venv}
IMAGES=data/mnist5k/mnist5k-images-idx3-ubyte.gz
mkdir -p "$OUT"

echo "== Kiln demo: ResNet-8 on long-tailed MNIST, cross-entropy vs LDAM-DRW =="
echo "Training pool: the first 400 images of each class; test set: the other 100 of each."
echo "Long-tailed training set: exp profile, ratio 100 (400, 239, …, 4 images per class)."
echo "$EPOCHS epochs, batch 128, LR 0.1 with 5-epoch warm-up, ×0.01 / ×1e-4 at 80 % / 90 %;"
echo "random 28×28 crops of the image zero-padded by 2 pixels; seed $SEED."
for run in "ce none" "ldam drw"; do
  set -- $run
  echo
  echo "-- kiln train --loss $1 --rule $2"
  "$KILN" train --model models/resnet8-mnist.kiln --data "$IMAGES" --split-first 400 \
    --lt-profile exp --lt-ratio 100 --loss "$1" --rule "$2" --epochs "$EPOCHS" --crop-padding 2 \
    --seed "$SEED" --out "$OUT/$1-$2" --force | grep -v '^epoch' | sed 's/^/   /'
done

echo
echo "== Side by side (validation = the balanced test set) =="
"$VENV/bin/python" scripts/demo_table.py CE="$OUT/ce-none" LDAM-DRW="$OUT/ldam-drw"
"$KILN" report "$OUT/ce-none" "$OUT/ldam-drw" --title "Kiln demo: cross-entropy vs LDAM-DRW" -o "$OUT/report.html" | sed 's/^/   /'

echo
echo "== The LDAM-DRW model exported to ONNX, checked with kiln run and onnxruntime =="
"$KILN" export "$OUT/ldam-drw" -o "$OUT/ldam-drw.onnx" | sed 's/^/   /'
"$VENV/bin/python" scripts/demo_check.py prepare "$OUT/ldam-drw.onnx" "$IMAGES" 400 "$OUT/check"
"$KILN" run "$OUT/ldam-drw.onnx" --input "image=$OUT/check/test.npy" --output "$OUT/check/kiln" | sed -n '1,3p' | sed 's/^/   /'
"$VENV/bin/python" scripts/demo_check.py compare "$OUT/ldam-drw.onnx" "$OUT/check" "$OUT/check/kiln/linear.npy"
echo
echo "== The test set as a folder of PNG files: kiln eval and kiln infer with the exported model =="
rm -rf "$OUT/test-png"
"$VENV/bin/python" scripts/demo_check.py pngs "$IMAGES" 400 "$OUT/test-png"
"$KILN" eval "$OUT/ldam-drw.onnx" "$OUT/test-png" --report "$OUT/eval.json" | sed 's/^/   /'
"$KILN" infer "$OUT/ldam-drw.onnx" "$OUT/test-png" --top-k 3 --output "$OUT/predictions.csv"
echo "   first rows of $OUT/predictions.csv:"
head -n 4 "$OUT/predictions.csv" | sed 's/^/     /'
echo
echo "== The same model quantized to int8 (kiln quantize, calibrated on 256 training images) =="
rm -rf "$OUT/train-png"
"$VENV/bin/python" scripts/demo_check.py pngs "$IMAGES" 400 "$OUT/train-png" train
"$KILN" quantize "$OUT/ldam-drw.onnx" --calibrate "$OUT/train-png" -o "$OUT/ldam-drw-int8.onnx" 2>&1 | sed 's/^/   /'
"$KILN" eval "$OUT/ldam-drw-int8.onnx" "$OUT/test-png" | sed -n '1,3p' | sed 's/^/   /'
"$KILN" run "$OUT/ldam-drw-int8.onnx" --input "image=$OUT/check/test.npy" --output "$OUT/check/kiln-int8" > /dev/null 2>&1
"$VENV/bin/python" scripts/demo_check.py quantized "$OUT/ldam-drw-int8.onnx" "$OUT/check" "$OUT/check/kiln-int8/linear.npy" "$OUT/check/kiln/linear.npy"
echo
echo "Its IR (the cosine head lowered to standard ops), last lines:"
"$KILN" dump "$OUT/ldam-drw.onnx" | tail -n 8 | sed 's/^/   /'

echo
echo "== The shipped networks, verified and summarised =="
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
"$KILN" bench models/resnet32-cifar.kiln --batch 128 --threads "$(nproc)" --rounds 3 --runs 5 --compare-ort 2>/dev/null
