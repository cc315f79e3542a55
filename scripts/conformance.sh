#!/usr/bin/env bash
# Regenerates ONNX's backend test data (if missing or from another onnx version) and runs
# `kiln conformance` on it; every test in conformance/expected-pass.txt must pass.
# Usage: scripts/conformance.sh path/to/kiln
set -euo pipefail
cd "$(dirname "$0")/.."
KILN=${1:?usage: scripts/conformance.sh path/to/kiln}
VENV=${KILN_VENV:-$HOME/.cache/kiln/venv}
DATA=${KILN_ONNX_TESTS:-.build/onnx-tests}
want="onnx $("$VENV/bin/python" -c 'import onnx; print(onnx.__version__)')"
if [ ! -f "$DATA/VERSION" ] || [ "$(cat "$DATA/VERSION")" != "$want" ]; then
  echo "conformance: writing ONNX backend test data to $DATA ($want)"
  "$VENV/bin/python" -W ignore scripts/onnx_testdata.py "$DATA" >/dev/null
fi
"$KILN" conformance --quiet --expect conformance/expected-pass.txt \
  "$DATA/node" "$DATA/simple" "$DATA/pytorch-converted" "$DATA/pytorch-operator" "$DATA/light"
# The same tests through the compiled path (passes, fused kernels, planned arena).
"$KILN" conformance --compiled --quiet --expect conformance/expected-pass-compiled.txt \
  "$DATA/node" "$DATA/simple" "$DATA/pytorch-converted" "$DATA/pytorch-operator" "$DATA/light"
