#!/usr/bin/env bash
# Folder inference end to end: `kiln infer` over N (default 10,000) random 32×32 RGB PNGs with
# ResNet-32 (seeded weights, exported to ONNX) at batch 128, against `kiln bench`'s
# compute-only throughput on the same model and batch, and against a Python pipeline
# (bench/pillow_ort.py: Pillow decode + onnxruntime), alternating RUNS times; prints medians
# and ratios. Usage: bench/infer_folder.sh [path/to/kiln]   (N, RUNS, THREADS to change)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-.build/release/kiln}
N=${N:-10000}
RUNS=${RUNS:-3}
THREADS=${THREADS:-2}
VENV=${KILN_VENV:-$HOME/.cache/kiln/venv}
DIR=out/infer-bench
if [ ! -f "$DIR/pngs/$N.done" ]; then
  rm -rf "$DIR/pngs" && mkdir -p "$DIR/pngs"
  "$VENV/bin/python" - "$DIR/pngs" "$N" <<'PY'
import os, sys, numpy as np
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
for i in range(n):
    sub = os.path.join(out, f"{i // 1000:02d}")
    os.makedirs(sub, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(os.path.join(sub, f"{i:05d}.png"))
open(os.path.join(out, f"{n}.done"), "w").close()
PY
fi
"$KILN" convert models/resnet32-cifar.kiln -o "$DIR/resnet32.onnx" --seed 1 > /dev/null
kiln_rates=(); bench_rates=(); python_rates=()
for r in $(seq "$RUNS"); do
  sync
  t0=$(date +%s.%N)
  "$KILN" infer "$DIR/resnet32.onnx" "$DIR/pngs" --batch 128 --threads "$THREADS" --output "$DIR/kiln.csv" 2>/dev/null
  t1=$(date +%s.%N)
  kiln_rates+=("$(python3 -c "print($N / ($t1 - $t0))")")
  python_rates+=("$("$VENV/bin/python" bench/pillow_ort.py "$DIR/resnet32.onnx" "$DIR/pngs" "$DIR/python.csv" --batch 128 --threads "$THREADS" | awk '{print $3}')")
  bench_rates+=("$("$KILN" bench "$DIR/resnet32.onnx" --batch 128 --threads "$THREADS" --rounds 5 --runs 1 2>/dev/null | awk '$1 == "kiln" { print $2; exit }')")
  echo "run $r: kiln infer ${kiln_rates[-1]} images/s, kiln bench (compute only) ${bench_rates[-1]}, Pillow + onnxruntime ${python_rates[-1]}"
done
python3 - "${kiln_rates[*]}" "${bench_rates[*]}" "${python_rates[*]}" <<'PY'
import statistics, sys
k, b, p = ([float(x.replace(",", "")) for x in s.split()] for s in sys.argv[1:4])
mk, mb, mp = statistics.median(k), statistics.median(b), statistics.median(p)
print(f"median images/s: kiln infer {mk:.0f}, kiln bench {mb:.0f}, Pillow + onnxruntime {mp:.0f}")
print(f"kiln infer / kiln bench = {mk / mb:.3f} (bar: >= 0.80); kiln infer / Python pipeline = {mk / mp:.2f} (bar: > 1)")
PY
