#!/usr/bin/env bash
# PyTorch for the training benchmark (`kiln bench --train --compare-torch`): a venv of its
# own outside the repository, since the wheel is large (~5 GB with its CUDA libraries; it
# runs on the CPU here). Not needed by `make test` or `make demo`. Safe to run again.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/venv.sh"
make_venv "${KILN_TORCH_VENV:-$HOME/.cache/kiln/venv-torch}" "$HERE/requirements-torch.txt" "torch, numpy; a few GB"
