#!/usr/bin/env bash
# Runs the kernel tests (Tests/KernelTests) once per instruction-set level this CPU supports,
# with KILN_ISA forcing the level: portable always, avx2 with AVX2 + FMA + F16C, avx512 with
# AVX-512 F/DQ/BW/VL. The same binaries run at every level (the kernels choose at run time).
# With KILN_BIN set (the kiln binary), the ONNX backend tests also run through the compiled
# path at every level but the best (scripts/conformance.sh ran that one), so whole models
# go through the portable and AVX2 kernels too.
# Usage: [KILN_BIN=path/to/kiln] scripts/kernel-levels.sh [swift test arguments, e.g. -c release --skip-build]
set -euo pipefail
cd "$(dirname "$0")/.."
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { for f in "$@"; do [[ " $flags " == *" $f "* ]] || return 1; done; }
levels=(portable)
has avx2 fma f16c && levels+=(avx2)
has avx512f avx512dq avx512bw avx512vl && levels+=(avx512)
best=${levels[${#levels[@]}-1]}
DATA=${KILN_ONNX_TESTS:-.build/onnx-tests}
for level in "${levels[@]}"; do
  echo "kernel tests at KILN_ISA=$level"
  KILN_ISA=$level swift test "$@" --filter KernelTests
  if [ -n "${KILN_BIN:-}" ] && [ "$level" != "$best" ] && [ -d "$DATA/node" ]; then
    echo "compiled conformance at KILN_ISA=$level"
    KILN_ISA=$level "$KILN_BIN" conformance --compiled --quiet --expect conformance/expected-pass-compiled.txt \
      "$DATA/node" "$DATA/simple" "$DATA/pytorch-converted" "$DATA/pytorch-operator" "$DATA/light" | tail -1
  fi
done
