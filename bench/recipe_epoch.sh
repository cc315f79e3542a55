#!/usr/bin/env bash
# A full recipe epoch against the training-step benchmark: writes synthetic CIFAR-10 binary
# files (random pixels, 5,000 images per class, plus a 10,000-image test file), runs one
# epoch of `kiln train --recipe cifar10-lt` on them (the exp ratio-100 subset: 12,406 images,
# batch 128, crops and flips, LDAM-DRW), then `kiln bench --train` on the same ResNet-32 LDAM
# step, alternating RUNS times, and prints the epoch's training images/s against the step's.
# Usage: bench/recipe_epoch.sh [path/to/kiln]   (THREADS, RUNS to change; default 2, 3)
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:-.build/release/kiln}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
VENV=${KILN_VENV:-$HOME/.cache/kiln/venv}
DIR=${RECIPE_DATA:-out/synthetic-cifar10}
if [ ! -f "$DIR/test_batch.bin" ]; then
  mkdir -p "$DIR"
  "$VENV/bin/python" - "$DIR" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(0)
def write(path, n, first):
    rec = np.empty((n, 3073), np.uint8)
    rec[:, 0] = (np.arange(n) + first) % 10
    rec[:, 1:] = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    rec.tofile(path)
for b in range(1, 6):
    write(f"{sys.argv[1]}/data_batch_{b}.bin", 10000, b)
write(f"{sys.argv[1]}/test_batch.bin", 10000, 0)
PY
fi
epoch_rates=() ; step_rates=()
for r in $(seq "$RUNS"); do
  rm -rf out/recipe-epoch
  "$KILN" train --recipe cifar10-lt --data "$DIR" --epochs 1 --threads "$THREADS" --out out/recipe-epoch > out/recipe-epoch.log
  epoch_rates+=("$("$VENV/bin/python" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["imagesPerSecond"])' out/recipe-epoch/metrics.jsonl)")
  step_rates+=("$("$KILN" bench models/resnet32-cifar.kiln --train --loss ldam --batch 128 --threads "$THREADS" --rounds 5 --runs 1 --warmup 2 \
    2>/dev/null | awk '$1 == "kiln" { print $2; exit }')")
  echo "run $r: recipe epoch ${epoch_rates[-1]} images/s, training-step benchmark ${step_rates[-1]} images/s"
done
"$VENV/bin/python" - "${epoch_rates[*]}" "${step_rates[*]}" <<'PY'
import statistics, sys
e = [float(x) for x in sys.argv[1].split()]
s = [float(x.replace(",", "")) for x in sys.argv[2].split()]
me, ms = statistics.median(e), statistics.median(s)
print(f"median: recipe epoch {me:.0f} images/s, step benchmark {ms:.0f} images/s, ratio {me / ms:.3f}")
PY
