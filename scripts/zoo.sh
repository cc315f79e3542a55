#!/usr/bin/env bash
# The model zoo check (issue 15): every torchvision and timm classifier of scripts/zoo.py,
# exported with random weights by the classic exporter (opset 17, static batch 1 and dynamic
# batch) and by the dynamo exporter (opset 18), run compiled by `kiln run` and by
# onnxruntime on the same seeded input. Not part of `make test` (it needs the PyTorch venv:
# a few GB, made by scripts/setup-torch.sh). Long: about a minute per model and exporter.
# Usage: scripts/zoo.sh [--models a,b] [--exporters classic-static,classic-dynamic,dynamo] [--no-timing] [--reuse-exports]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-torch.sh
swift build -c release
VENV=${KILN_TORCH_VENV:-$HOME/.cache/kiln/venv-torch}
exec "$VENV/bin/python" -W ignore scripts/zoo.py "$(swift build -c release --show-bin-path)/kiln" "${ZOO_OUT:-.build/zoo}" "$@"
