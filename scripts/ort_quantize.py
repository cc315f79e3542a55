"""Quantizes an ONNX model with onnxruntime's own quantizer (quantize_static: QDQ format,
weights int8 per output channel, activations uint8 per tensor, min/max calibration on
seeded uniform [0, 1) inputs), then runs the quantized model in onnxruntime.

Usage: python ort_quantize.py MODEL.onnx QUANTIZED.onnx INPUT.npy OUTPUT.npy
Prints "step S" — the quantization step of the model's output, when a DequantizeLinear
makes it — and the quantized model's op types.
"""
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


def main():
    src, dst, input_path, output_path = sys.argv[1:5]
    model = onnx.load(src)
    name = model.graph.input[0].name
    shape = [d.dim_value or 1 for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: rng.random([4] + shape[1:], dtype=np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    y = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, {name: np.load(input_path)})[0]
    np.save(output_path, y)
    quantized = onnx.load(dst)
    initializers = {i.name: i for i in quantized.graph.initializer}
    for node in quantized.graph.node:
        if node.op_type == "DequantizeLinear" and node.output[0] == quantized.graph.output[0].name:
            print("step", float(onnx.numpy_helper.to_array(initializers[node.input[1]]).ravel()[0]))
    print("ops", " ".join(sorted({n.op_type for n in quantized.graph.node})))


if __name__ == "__main__":
    main()
