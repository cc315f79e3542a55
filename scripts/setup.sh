#!/usr/bin/env bash
# Installs what Kiln needs on a fresh Debian machine, skipping whatever is already present.
# Called by `make demo` and `make test`; safe to run again.
set -euo pipefail

APT_PACKAGES=(libopenblas-dev libprotobuf-c-dev protobuf-c-compiler libpng-dev libjpeg-dev zlib1g-dev
              pkg-config graphviz python3-venv openmpi-bin chromium)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The Python tools (onnx for test data and checks, onnxruntime as the reference runtime) live
# in a venv outside the repository; it is rebuilt when scripts/requirements.txt changes.
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/venv.sh"
make_venv "${KILN_VENV:-$HOME/.cache/kiln/venv}" "$HERE/requirements.txt" "onnx, onnxruntime"

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: the Swift toolchain (6.1 or later) is not on PATH; install it from swift.org" >&2
  exit 1
fi
