#!/usr/bin/env bash
# The zoo benchmark (issue 16): Kiln, onnxruntime and OpenVINO (f32) interleaved on the CNNs of
# the zoo check at batch 1 and 16, 2 threads, with the geometric mean of Kiln / best. A
# separate command (the PyTorch venv of scripts/setup-torch.sh, with openvino); the ONNX files
# are the zoo's own (.build/zoo, written when missing). Long: a few minutes per model.
# Usage: scripts/zoo-bench.sh [--models a,b] [--batches 1,16] [--rounds 3] [--seconds 1.0]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-torch.sh
swift build -c release --product kiln
VENV=${KILN_TORCH_VENV:-$HOME/.cache/kiln/venv-torch}
exec "$VENV/bin/python" -W ignore bench/zoo_bench.py "$(swift build -c release --show-bin-path)/kiln" "${ZOO_OUT:-.build/zoo}" "$@"
