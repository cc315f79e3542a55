#!/usr/bin/env bash
# Reproduces the demo's comparison over several seeds: ResNet-8 on the MNIST sample's
# exp ratio-100 long-tailed split, 100 epochs, with CE, CE-DRW, LDAM and LDAM-DRW, seeds
# 0, 1, 2 (SEEDS to change), and prints the mean balanced test accuracy and the mean accuracy
# on the three rarest classes beside the PyTorch reference measured for issue 6.
# About 2 minutes per run on 2 cores (12 runs). Usage: scripts/lt-reference.sh [path/to/kiln]
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-.build/release/kiln}
OUT=${LT_OUT:-out/lt-reference}
SEEDS=${SEEDS:-0 1 2}
EPOCHS=${EPOCHS:-100}
VENV=${KILN_VENV:-$HOME/.cache/kiln/venv}
mkdir -p "$OUT"
for seed in $SEEDS; do
  for method in "ce none" "ce drw" "ldam none" "ldam drw"; do
    set -- $method
    dir="$OUT/$1-$2-s$seed"
    if [ -f "$dir/model.onnx" ]; then echo "$dir: done already"; continue; fi
    if [ -f "$dir/checkpoint.kcp" ]; then resume=(--resume); else resume=(--force); fi
    echo "$dir"
    "$KILN" train --model models/resnet8-mnist.kiln --data data/mnist5k/mnist5k-images-idx3-ubyte.gz \
      --split-first 400 --lt-profile exp --lt-ratio 100 --loss "$1" --rule "$2" --epochs "$EPOCHS" \
      --crop-padding 2 --seed "$seed" --out "$dir" "${resume[@]}" > "$dir.log" 2>&1 || { tail -n 3 "$dir.log"; exit 1; }
  done
done
"$VENV/bin/python" - "$OUT" $SEEDS <<'PY'
import json, sys
out, seeds = sys.argv[1], sys.argv[2:]
reference = {"CE": (87.9, 69.4), "CE-DRW": (89.2, None), "LDAM": (90.8, None), "LDAM-DRW": (91.7, 78.6)}
print(f"{'method':10s} {'Kiln top-1 (mean)':>18s} {'per seed':>24s} {'rarest 3':>9s} {'best-epoch':>11s} {'reference':>10s} {'ref rarest 3':>13s}")
for name, run in (("CE", "ce-none"), ("CE-DRW", "ce-drw"), ("LDAM", "ldam-none"), ("LDAM-DRW", "ldam-drw")):
    finals, rare, best = [], [], []
    for s in seeds:
        reports = [json.loads(l) for l in open(f"{out}/{run}-s{s}/metrics.jsonl") if l.strip()]
        v = reports[-1]["val"]
        finals.append(100 * v["top1"])
        rare.append(100 * sum(v["perClass"][-3:]) / 3)
        best.append(100 * max(r["val"]["top1"] for r in reports))
    m = lambda xs: sum(xs) / len(xs)
    ref, ref_rare = reference[name]
    print(f"{name:10s} {m(finals):17.1f}% {', '.join(f'{x:.1f}' for x in finals):>24s} {m(rare):8.1f}% {m(best):10.1f}% "
          f"{ref:9.1f}% {'' if ref_rare is None else f'{ref_rare:.1f}%':>13s}")
PY
