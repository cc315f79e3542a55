"""Writes small models in older and newer opsets, with inputs and onnxruntime's outputs, to
test Kiln's opset conversions.

Usage: python make_opset_models.py OUT_DIR
For each case: CASE.onnx, CASE.input.npy (input "x") and CASE.expected.npy (output "y").
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def build(out, name, opset, nodes, in_shape, inits=(), external=False):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7 if opset < 15 else 8
    path = os.path.join(out, name + ".onnx")
    if external:
        # Weights in a separate file beside the model (ONNX external data).
        onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=name + ".weights", size_threshold=0)
    else:
        onnx.save(m, path)
    x = np.random.default_rng(len(name)).standard_normal(in_shape).astype(np.float32)
    y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.save(os.path.join(out, name + ".input.npy"), x)
    np.save(os.path.join(out, name + ".expected.npy"), y)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    n = helper.make_node
    ints = lambda name, v: numpy_helper.from_array(np.array(v, np.int64), name)
    floats = lambda name, v: numpy_helper.from_array(np.array(v, np.float32), name)
    build(out, "softmax11_axis1", 11, [n("Softmax", ["x"], ["y"], axis=1)], (2, 3, 4))
    build(out, "logsoftmax11_axis0", 11, [n("LogSoftmax", ["x"], ["y"], axis=0)], (2, 3, 4))
    build(out, "softmax12_default", 12, [n("Softmax", ["x"], ["y"])], (2, 3, 4))
    build(out, "clip10_attrs", 10, [n("Clip", ["x"], ["y"], min=-0.5, max=0.25)], (3, 5))
    build(out, "pad10_constant", 10, [n("Pad", ["x"], ["y"], pads=[0, 1, 2, 0, 2, 1], value=1.5)], (2, 3, 4))
    build(out, "pad10_reflect", 10, [n("Pad", ["x"], ["y"], pads=[0, 0, 1, 2, 0, 0, 2, 1], mode="reflect")], (1, 2, 4, 4))
    build(out, "slice9_attrs", 9, [n("Slice", ["x"], ["y"], starts=[1, 0], ends=[1000, -1], axes=[0, 2])], (3, 4, 5))
    build(out, "unsqueeze11_squeeze11", 11, [n("Unsqueeze", ["x"], ["u"], axes=[0, 3]), n("Squeeze", ["u"], ["y"], axes=[0])], (2, 3))
    build(out, "reducemean18_axes_input", 18, [n("ReduceMean", ["x", "axes"], ["y"], keepdims=0)], (2, 3, 4), [ints("axes", [1, -1])])
    build(out, "reducemean13_attr", 13, [n("ReduceMean", ["x"], ["y"], axes=[0, 2])], (2, 3, 4))
    bn = [floats("s", [1.0, 2.0, 0.5]), floats("b", [0.1, -0.2, 0.3]), floats("m", [0.0, 0.5, -0.5]), floats("v", [1.0, 2.0, 0.25])]
    build(out, "batchnorm7_spatial", 7, [n("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], spatial=1, epsilon=1e-3)], (2, 3, 2, 2), bn)
    build(out, "batchnorm9", 9, [n("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], momentum=0.8)], (2, 3, 2, 2), bn)
    build(out, "dropout10_ratio", 10, [n("Dropout", ["x"], ["y"], ratio=0.3)], (4, 5))
    build(out, "gemm7_c_required", 7, [n("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, transB=1)], (2, 3),
          [floats("w", np.arange(12).reshape(4, 3) / 10), floats("c", [1.0, 2.0, 3.0, 4.0])])
    build(out, "averagepool19_dilations", 19, [n("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 1, 1, 1])], (1, 1, 5, 5))
    build(out, "maxpool12_ceil", 12, [n("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)], (1, 2, 6, 6))
    build(out, "flatten9_axis0", 9, [n("Flatten", ["x"], ["y"], axis=0)], (2, 3, 4))
    build(out, "external_weights", 17, [n("MatMul", ["x", "w"], ["t"]), n("Add", ["t", "b"], ["y"])], (2, 8),
          [floats("w", np.linspace(-1, 1, 8 * 6).reshape(8, 6)), floats("b", np.arange(6))], external=True)
    build(out, "reshape21", 21, [n("Reshape", ["x", "s"], ["y"])], (2, 3, 4), [ints("s", [0, -1])])


if __name__ == "__main__":
    main()
