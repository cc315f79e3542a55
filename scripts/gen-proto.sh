#!/usr/bin/env bash
# Regenerates the committed protobuf-c code in Sources/COnnxProto from proto/onnx-kiln.proto.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc-c >/dev/null || { echo "gen-proto: install protobuf-c-compiler (apt-get install protobuf-c-compiler)" >&2; exit 1; }
tmp=$(mktemp -d)
protoc-c --proto_path=proto --c_out="$tmp" proto/onnx-kiln.proto
mkdir -p Sources/COnnxProto/include
mv "$tmp/onnx-kiln.pb-c.h" Sources/COnnxProto/include/onnx-kiln.pb-c.h
mv "$tmp/onnx-kiln.pb-c.c" Sources/COnnxProto/onnx-kiln.pb-c.c
rmdir "$tmp"
echo "gen-proto: wrote Sources/COnnxProto/{include/onnx-kiln.pb-c.h,onnx-kiln.pb-c.c}"
