#!/usr/bin/env bash
# The demo: what Kiln can do today, on the networks it ships.
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
