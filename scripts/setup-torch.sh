#!/usr/bin/env bash
# PyTorch for the training benchmark (`kiln bench --train --compare-torch`): a venv of its
# own outside the repository, since the wheel is large (~5 GB with its CUDA libraries; it
# runs on the CPU here). Not needed by `make test` or `make demo`. Safe to run again.
set -euo pipefail
VENV=${KILN_TORCH_VENV:-$HOME/.cache/kiln/venv-torch}
REQ="$(cd "$(dirname "$0")" && pwd)/requirements-torch.txt"
if [ ! -x "$VENV/bin/python" ] || ! cmp -s "$REQ" "$VENV/.kiln-requirements"; then
  echo "setup-torch: creating the venv $VENV (torch, numpy); this downloads a few GB"
  rm -rf "$VENV"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
  cp "$REQ" "$VENV/.kiln-requirements"
fi
