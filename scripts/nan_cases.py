"""NaN and infinity cases for every op of Kiln's catalogue, with onnxruntime's outputs.

Usage: python nan_cases.py OUT_DIR
For each case NAME it writes OUT_DIR/NAME/model.onnx, input_K.npy (data holding NaN, +inf,
−inf, ±0 and ordinary values) and output_K.npy, onnxruntime's result (ORT_DISABLE_ALL, so
its kernels, not its graph rewrites, decide), and lists the cases in OUT_DIR/cases.txt as
"NAME<TAB>OPS<TAB>ORACLE". Convolutions
come in the shapes that send Kiln's compiled path to each of its algorithms (Winograd, direct,
im2col, 1×1 GEMM), with non-finite values in the input and, once, in the weights.

Where onnxruntime's answer depends on its loop order rather than on the values, the expected
output comes from numpy instead (ORACLE "numpy"): its MaxPool and GlobalMaxPool drop a NaN or
keep it depending on where in the window it sits (a 2×2 window [NaN, 1, 2, NaN] gives 1; a
global max over [NaN, 1, 2, NaN] gives NaN), and its LRN turns a window holding an infinity
into NaN (a running sum of squares that subtracts inf − inf). numpy's max propagates NaN, as
ONNX's Max and onnxruntime's own Max do, and LRN follows the operator's formula. Its linear
Resize reads a neighbour of weight 0 in some places and not in others; numpy's form of the
operator's formula does not read it.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

F = TensorProto.FLOAT
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.0, 0.25, 3.0, -0.5], np.float32)


def data(shape, seed=0, density=0.25):
    """Ordinary values with a share of NaN, +inf and −inf; the first ten are SPECIAL."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[: min(flat.size, SPECIAL.size)] = SPECIAL[: flat.size]
    mask = rng.random(flat.size) < density
    flat[mask] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), mask.sum())
    return x


def weights(shape, seed=1):
    return (np.random.default_rng(seed).standard_normal(shape) * 0.5).astype(np.float32)


cases = []


def case(name, op, nodes, inputs, outputs, inits=(), opset=17, oracle=None, out_shape=None):
    """inputs: [(name, array)]; outputs: [name]; oracle: numpy's outputs from the inputs;
    out_shape: the outputs' shape where onnx's shape inference gives none (function ops)."""
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, F, a.shape) for n, a in inputs],
                              [helper.make_tensor_value_info(o, F if out_shape else 0, out_shape) for o in outputs],
                              initializer=[numpy_helper.from_array(a, n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    cases.append((name, op, model, inputs, oracle))


def np_resize_linear_asymmetric(x, scales):
    """Linear Resize with asymmetric coordinates (x_in = x_out / scale), axis by axis in
    float64; the upper neighbour clamped to the edge, a neighbour of weight 0 not read."""
    y = x.astype(np.float64)
    for axis, s in enumerate(scales):
        n = y.shape[axis]
        out = int(np.floor(n * s))
        rows = []
        for o in range(out):
            c = o / float(s)
            b = int(np.floor(c))
            r = c - b
            lo, hi = np.take(y, min(b, n - 1), axis=axis), np.take(y, min(b + 1, n - 1), axis=axis)
            rows.append(lo if r == 0 else (1 - r) * lo + r * hi)
        y = np.stack(rows, axis=axis)
    return y.astype(np.float32)


def np_maxpool(x, k, s, pads=(0, 0, 0, 0)):
    n, c, h, w = x.shape
    xp = np.full((n, c, h + pads[0] + pads[2], w + pads[1] + pads[3]), -np.inf, np.float32)
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + w] = x
    oh, ow = (xp.shape[2] - k[0]) // s[0] + 1, (xp.shape[3] - k[1]) // s[1] + 1
    y = np.empty((n, c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = np.max(xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]], axis=(2, 3))
    return y


def np_lrn(x, size, alpha=1e-4, beta=0.75, bias=1.0):
    c = x.shape[1]
    sq = np.zeros_like(x, dtype=np.float64)
    for i in range(c):
        lo, hi = max(0, i - (size - 1) // 2), min(c - 1, i + -(-(size - 1) // 2))
        sq[:, i] = np.sum(x[:, lo:hi + 1].astype(np.float64) ** 2, axis=1)
    return (x / (bias + alpha / size * sq) ** beta).astype(np.float32)


def np_quantize(x, scale, zero, lo, hi):
    """QuantizeLinear: x / scale rounded half to even, + zero, saturated; NaN to the lowest value."""
    q = np.rint(x / np.float32(scale)).astype(np.float64)
    return np.clip(np.where(np.isnan(q), -1e9, q + zero), lo, hi).astype(np.int64)


def np_requantize(acc, scale=np.float32(0.05) * np.float32(0.02) / np.float32(0.4), zero=10):
    """The QLinear ops' output: the int32 sum · (a_scale·b_scale / y_scale), rounded, + zero, as uint8."""
    return np.clip(np.rint(acc * np.float64(np.float32(scale))) + zero, 0, 255).astype(np.uint8)


def np_conv_pad1(x, w):
    """An integer convolution, stride 1, pads 1 (one image)."""
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    y = np.zeros((n, m, h + 2 - kh + 1, wd + 2 - kw + 1), np.int64)
    for i in range(y.shape[2]):
        for j in range(y.shape[3]):
            y[:, :, i, j] = np.einsum("nckl,mckl->nm", p[:, :, i:i + kh, j:j + kw], w)
    return y


def one(op, shape=(2, 3, 4, 5), seed=0, **attrs):
    return ([helper.make_node(op, ["x"], ["y"], name=op.lower(), **attrs)], [("x", data(shape, seed))], ["y"])


def build():
    for op, attrs in [("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("Sigmoid", {}), ("Tanh", {}), ("HardSigmoid", {}),
                      ("HardSwish", {}), ("Identity", {}), ("Dropout", {}), ("Sqrt", {})]:
        case(op.lower(), op, *one(op, **attrs))
    for op, attrs, opset in [("Exp", {}, 17), ("Log", {}, 17), ("Erf", {}, 17), ("Reciprocal", {}, 17), ("Floor", {}, 17),
                             ("Ceil", {}, 17), ("Neg", {}, 17), ("Abs", {}, 17), ("Elu", {"alpha": 0.7}, 17), ("Selu", {}, 17),
                             ("Softplus", {}, 17), ("Mish", {}, 18), ("Gelu", {}, 20), ("Gelu", {"approximate": "tanh"}, 20),
                             ("Swish", {"alpha": 0.7}, 24)]:
        suffix = "-tanh" if attrs.get("approximate") == "tanh" else ""
        case(op.lower() + suffix, op, *one(op, **attrs), opset=opset)
    case("pow", "Pow", [helper.make_node("Pow", ["a", "b"], ["y"], name="pow")],
         [("a", data((3, 4), 50)), ("b", data((4,), 51, 0.4))], ["y"])
    case("mod", "Mod", [helper.make_node("Mod", ["a", "b"], ["y"], name="mod", fmod=1)],
         [("a", data((3, 4), 56)), ("b", data((4,), 57, 0.4))], ["y"])
    case("prelu", "PRelu", [helper.make_node("PRelu", ["x", "s"], ["y"], name="prelu")], [("x", data((2, 3, 4), 52))], ["y"],
         [("s", weights((3, 1), 53))])
    for op in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]:
        case(op.lower(), op, [helper.make_node(op, ["a", "b"], ["y"], name=op.lower())],
             [("a", data((2, 5), 54)), ("b", data((5,), 55, 0.4))], ["y"])
    # Logic on comparisons of non-finite data (NaN compares false).
    a, b = data((2, 5), 56), data((5,), 57, 0.4)
    case("not", "Not,Less", [helper.make_node("Less", ["a", "b"], ["p"], name="less"), helper.make_node("Not", ["p"], ["y"], name="not")],
         [("a", a), ("b", b)], ["y"])
    for op in ["And", "Or", "Xor"]:
        case(op.lower(), op + ",Less,Greater",
             [helper.make_node("Less", ["a", "b"], ["p"], name="less"), helper.make_node("Greater", ["a", "c"], ["q"], name="greater"),
              helper.make_node(op, ["p", "q"], ["y"], name=op.lower())],
             [("a", a), ("b", b), ("c", data((2, 1), 64, 0.4))], ["y"])
    case("where", "Where,Less", [helper.make_node("Less", ["a", "b"], ["c"], name="less"),
                                 helper.make_node("Where", ["c", "a", "b"], ["y"], name="where")],
         [("a", data((2, 6), 58)), ("b", data((6,), 59, 0.4))], ["y"])
    case("expand", "Expand", [helper.make_node("Expand", ["x", "s"], ["y"], name="expand")], [("x", data((3, 1), 60))], ["y"],
         [("s", np.array([2, 1, 4], np.int64))])
    case("tile", "Tile", [helper.make_node("Tile", ["x", "r"], ["y"], name="tile")], [("x", data((2, 3), 61))], ["y"],
         [("r", np.array([2, 3], np.int64))])
    case("range", "Range,Cast,Add", [helper.make_node("Range", ["s", "l", "d"], ["r"], name="range"),
                                     helper.make_node("Cast", ["r"], ["f"], name="cast", to=F),
                                     helper.make_node("Add", ["x", "f"], ["y"], name="add")],
         [("x", data((2, 5), 62))], ["y"], [("s", np.array(7, np.int64)), ("l", np.array(-3, np.int64)), ("d", np.array(-2, np.int64))])
    case("split", "Split", [helper.make_node("Split", ["x", "sp"], ["y0", "y1"], name="split", axis=1)], [("x", data((2, 7), 63))],
         ["y0", "y1"], [("sp", np.array([3, 4], np.int64))])
    # Relu at the sizes the compiled vector loops take whole and the remainder they finish.
    case("relu-long", "Relu", *one("Relu", shape=(3, 37), seed=2))
    for op in ["Add", "Sub", "Mul", "Div"]:
        case(op.lower(), op, [helper.make_node(op, ["a", "b"], ["y"], name=op.lower())],
             [("a", data((2, 3, 4), 3)), ("b", data((2, 3, 4), 4))], ["y"])
        case(op.lower() + "-broadcast", op, [helper.make_node(op, ["a", "b"], ["y"], name=op.lower())],
             [("a", data((2, 3, 4), 5)), ("b", data((3, 1), 6, 0.4))], ["y"])
    for op in ["Max", "Min", "Sum"]:
        case(op.lower(), op, [helper.make_node(op, ["a", "b", "c"], ["y"], name=op.lower())],
             [("a", data((2, 9), 7)), ("b", data((2, 9), 8)), ("c", data((9,), 9))], ["y"])
    case("clip", "Clip", [helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")], [("x", data((4, 6), 10))], ["y"],
         [("lo", np.array(-1, np.float32)), ("hi", np.array(2, np.float32))])
    case("clip-open", "Clip", [helper.make_node("Clip", ["x", "lo"], ["y"], name="clip")], [("x", data((4, 6), 11))], ["y"],
         [("lo", np.array(0, np.float32))])

    # Convolutions (bias, and a residual Add + Relu that Kiln fuses into the epilogue).
    for name, c, m, k, stride, pad in [("winograd", 16, 8, 3, 1, 1), ("direct", 3, 8, 3, 1, 1), ("im2col", 4, 8, 3, 2, 1),
                                        ("1x1", 8, 8, 1, 1, 0), ("odd", 3, 5, 3, 1, 0)]:
        x = data((2, c, 6, 7), 12, 0.05)
        w, b = weights((m, c, k, k), 13), weights((m,), 14)
        case("conv-" + name, "Conv", [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", strides=[stride, stride],
                                                       pads=[pad] * 4)], [("x", x)], ["y"], [("w", w), ("b", b)])
        if pad == 1 and stride == 1:
            r = data((2, m, 6, 7), 15, 0.05)
            case("conv-" + name + "-add-relu", "Conv",
                 [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1] * 4),
                  helper.make_node("Add", ["c", "r"], ["s"], name="add"), helper.make_node("Relu", ["s"], ["y"], name="relu")],
                 [("x", x), ("r", r)], ["y"], [("w", w), ("b", b)])
    # Non-finite weights: a constant weight with NaN and inf, finite input.
    w = weights((8, 16, 3, 3), 16)
    w[0, 0, 1, 1], w[1, 2, 0, 0], w[2, 3, 2, 2] = np.nan, np.inf, -np.inf
    case("conv-winograd-nonfinite-weights", "Conv", [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1] * 4)],
         [("x", weights((1, 16, 6, 6), 17))], ["y"], [("w", w)])

    gw, gb = weights((5, 6), 18), weights((5,), 19)
    case("gemm", "Gemm", [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="gemm", transB=1)], [("x", data((3, 6), 20, 0.1))],
         ["y"], [("w", gw), ("b", gb)])
    case("matmul", "MatMul", [helper.make_node("MatMul", ["a", "b"], ["y"], name="matmul")],
         [("a", data((3, 4), 21, 0.1)), ("b", data((4, 5), 22, 0.1))], ["y"])
    case("batchnorm", "BatchNormalization",
         [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn")], [("x", data((2, 3, 4, 4), 23))], ["y"],
         [("s", weights((3,), 24)), ("b", weights((3,), 25)), ("m", weights((3,), 26)), ("v", np.abs(weights((3,), 27)) + 0.5)])
    for op, attrs in [("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
                      ("MaxPool", {"kernel_shape": [3, 3], "strides": [1, 1], "pads": [1, 1, 1, 1]}),
                      ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
                      ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1})]:
        suffix = "-pad" if "pads" in attrs else ""
        nodes, ins, outs = one(op, shape=(2, 3, 8, 9), seed=28, **attrs)
        oracle = None
        if op == "MaxPool":
            oracle = [np_maxpool(ins[0][1], attrs["kernel_shape"], attrs["strides"], attrs.get("pads", (0, 0, 0, 0)))]
        case(op.lower() + suffix, op, nodes, ins, outs, oracle=oracle)
    nodes, ins, outs = one("MaxPool", shape=(1, 2, 6, 40), seed=29, kernel_shape=[2, 2], strides=[2, 2])
    case("maxpool-wide", "MaxPool", nodes, ins, outs, oracle=[np_maxpool(ins[0][1], (2, 2), (2, 2))])
    case("globalaveragepool", "GlobalAveragePool", *one("GlobalAveragePool", seed=30))
    nodes, ins, outs = one("GlobalMaxPool", seed=31)
    case("globalmaxpool", "GlobalMaxPool", nodes, ins, outs, oracle=[np.max(ins[0][1], axis=(2, 3), keepdims=True)])
    nodes, ins, outs = one("LRN", shape=(1, 5, 3, 3), seed=32, size=3)
    case("lrn", "LRN", nodes, ins, outs, oracle=[np_lrn(ins[0][1], 3)])
    case("softmax", "Softmax", *one("Softmax", shape=(4, 6), seed=33, axis=1))
    case("logsoftmax", "LogSoftmax", *one("LogSoftmax", shape=(4, 6), seed=34, axis=1))
    case("reducemean", "ReduceMean", *one("ReduceMean", shape=(3, 4, 5), seed=35, axes=[1, 2]))
    case("reducel2", "ReduceL2", *one("ReduceL2", shape=(3, 4, 5), seed=36, axes=[2]))
    # onnxruntime's ReduceMax and ReduceMin may drop a NaN; ONNX's reference (numpy's max)
    # propagates it, as Kiln's Max, MaxPool and GlobalMaxPool do.
    for k, op in enumerate(["ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1", "ReduceLogSumExp"]):
        nodes, ins, outs = one(op, shape=(3, 4, 5), seed=70 + k, axes=[1])
        oracle = {"ReduceMax": np.max, "ReduceMin": np.min}.get(op)
        case(op.lower(), op, nodes, ins, outs, oracle=oracle and [oracle(ins[0][1], axis=1, keepdims=True)])
    case("reducesum", "ReduceSum", [helper.make_node("ReduceSum", ["x", "a"], ["y"], name="reducesum", keepdims=0)],
         [("x", data((3, 4, 5), 76))], ["y"], [("a", np.array([0, 2], np.int64))])
    case("layernorm", "LayerNormalization",
         [helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], name="ln", axis=-1, epsilon=1e-5)],
         [("x", data((2, 3, 6), 77))], ["y"], [("s", weights((6,), 78)), ("b", weights((6,), 79))])
    case("instancenorm", "InstanceNormalization",
         [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], name="in")],
         [("x", data((2, 3, 4, 4), 80))], ["y"], [("s", weights((3,), 81)), ("b", weights((3,), 82))])

    case("groupnorm", "GroupNormalization",
         [helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], name="gn", num_groups=2, epsilon=1e-5)],
         [("x", data((2, 4, 3, 3), 83))], ["y"], [("s", weights((4,), 84)), ("b", weights((4,), 85))], opset=21,
         out_shape=(2, 4, 3, 3))
    case("einsum", "Einsum", [helper.make_node("Einsum", ["x", "w"], ["y"], name="einsum", equation="bij,bjk->bik")],
         [("x", data((2, 3, 4), 86))], ["y"], [("w", weights((2, 4, 5), 87))])
    case("cumsum", "CumSum", [helper.make_node("CumSum", ["x", "a"], ["y"], name="cumsum", reverse=1)], [("x", data((3, 6), 88))], ["y"],
         [("a", np.array(1, np.int64))])

    # Data movement: NaN and infinities pass through unchanged.
    case("gathernd", "GatherND", [helper.make_node("GatherND", ["x", "i"], ["y"], name="gathernd")], [("x", data((3, 4, 5), 89))], ["y"],
         [("i", np.array([[2, 1], [0, 3], [1, -1]], np.int64))])
    case("scatternd", "ScatterND", [helper.make_node("ScatterND", ["x", "i", "u"], ["y"], name="scatternd", reduction="add")],
         [("x", data((4, 3), 90)), ("u", data((2, 3), 91))], ["y"], [("i", np.array([[1], [3]], np.int64))], opset=18)
    # onnxruntime's linear Resize reads a neighbour of weight 0 in some places and not in
    # others (−inf next to +inf gives NaN at one sample point, −inf at another): the oracle is
    # the operator's formula in numpy, a neighbour of weight 0 not read.
    rx, rs = data((1, 2, 4, 5), 93), np.array([1, 1, 2, 3], np.float32)
    case("resize", "Resize", [helper.make_node("Resize", ["x", "", "s"], ["y"], name="resize", mode="linear",
                                               coordinate_transformation_mode="asymmetric")],
         [("x", rx)], ["y"], [("s", rs)], oracle=[np_resize_linear_asymmetric(rx, rs)])
    case("trilu", "Trilu", [helper.make_node("Trilu", ["x", "k"], ["y"], name="trilu", upper=0)], [("x", data((2, 4, 5), 92))], ["y"],
         [("k", np.array(1, np.int64))])
    case("flatten", "Flatten", *one("Flatten", seed=37, axis=1))
    case("transpose", "Transpose", *one("Transpose", seed=38, perm=[0, 2, 3, 1]))
    case("cast", "Cast", *one("Cast", seed=39, to=F))
    case("reshape", "Reshape", [helper.make_node("Reshape", ["x", "s"], ["y"], name="reshape")], [("x", data((2, 3, 4), 40))], ["y"],
         [("s", np.array([4, -1], np.int64))])
    case("squeeze", "Squeeze", [helper.make_node("Squeeze", ["x", "a"], ["y"], name="squeeze")], [("x", data((2, 1, 4), 41))], ["y"],
         [("a", np.array([1], np.int64))])
    case("unsqueeze", "Unsqueeze", [helper.make_node("Unsqueeze", ["x", "a"], ["y"], name="unsqueeze")], [("x", data((2, 4), 42))],
         ["y"], [("a", np.array([0], np.int64))])
    case("slice", "Slice", [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"], name="slice")], [("x", data((3, 8), 43))],
         ["y"], [("st", np.array([1], np.int64)), ("en", np.array([8], np.int64)), ("ax", np.array([1], np.int64)),
                 ("sp", np.array([2], np.int64))])
    case("pad", "Pad", [helper.make_node("Pad", ["x", "p", "v"], ["y"], name="pad")], [("x", data((2, 3), 44))], ["y"],
         [("p", np.array([1, 0, 0, 2], np.int64)), ("v", np.array(np.nan, np.float32))])
    case("concat", "Concat", [helper.make_node("Concat", ["a", "b"], ["y"], name="concat", axis=1)],
         [("a", data((2, 3), 45)), ("b", data((2, 2), 46))], ["y"])
    case("gather", "Gather", [helper.make_node("Gather", ["x", "i"], ["y"], name="gather", axis=1)], [("x", data((3, 5), 47))], ["y"],
         [("i", np.array([4, 0, 0, 2], np.int64))])
    # Shape-side ops around a non-finite tensor: Shape → ConstantOfShape(NaN) → Add, Constant.
    case("constantofshape", "ConstantOfShape,Shape,Constant",
         [helper.make_node("Shape", ["x"], ["s"], name="shape"),
          helper.make_node("ConstantOfShape", ["s"], ["c"], name="cos", value=numpy_helper.from_array(np.array([np.inf], np.float32))),
          helper.make_node("Constant", [], ["k"], name="constant", value=numpy_helper.from_array(np.array([np.nan, -np.inf, 1], np.float32))),
          helper.make_node("Add", ["c", "x"], ["a"], name="add"), helper.make_node("Mul", ["a", "k"], ["y"], name="mul")],
         [("x", data((2, 3), 48))], ["y"])

    # Quantization: NaN quantizes to the type's lowest value and ±inf saturate, as onnxruntime does.
    case("round", "Round", *one("Round", seed=94))
    qx = data((2, 3, 4, 5), 95) * 4
    case("quantize-dequantize", "QuantizeLinear,DequantizeLinear",
         [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quantize"),
          helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dequantize")],
         [("x", qx)], ["y"], [("s", np.array(0.05, np.float32)), ("z", np.array(128, np.uint8))], opset=21)
    case("quantize-per-channel", "QuantizeLinear",
         [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], name="quantize", axis=1)],
         [("x", qx)], ["y"], [("s", np.array([0.05, 0.1, 0.02], np.float32)), ("z", np.array([0, -3, 5], np.int8))], opset=21)
    case("dynamicquantizelinear", "DynamicQuantizeLinear",
         [helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "ys", "yz"], name="dynamic")],
         [("x", np.where(np.isfinite(qx), qx, 0).astype(np.float32))], ["y", "ys", "yz"], opset=21)

    def quantize(name, value, scale, zero):
        return helper.make_node("QuantizeLinear", [value, scale, zero], [name], name=name)
    scalars = [("sa", np.array(0.05, np.float32)), ("za", np.array(120, np.uint8)), ("sb", np.array(0.02, np.float32)),
               ("zb", np.array(-2, np.int8)), ("sy", np.array(0.4, np.float32)), ("zy", np.array(10, np.uint8))]
    case("matmulinteger", "MatMulInteger,QuantizeLinear",
         [quantize("qa", "a", "sa", "za"), quantize("qb", "b", "sb", "zb"),
          helper.make_node("MatMulInteger", ["qa", "qb", "za", "zb"], ["y"], name="matmulinteger")],
         [("a", data((3, 6), 96) * 4), ("b", data((6, 4), 97))], ["y"], scalars[:4], opset=21)
    # QLinearMatMul and QLinearConv against the operators' formulas in numpy: onnxruntime 1.32
    # without VNNI sums uint8·int8 products in pairs saturated to int16 (vpmaddubsw), so its
    # results differ where a pair exceeds 32767 (these data do).
    qa, qb = data((3, 6), 98) * 4, data((6, 4), 99)
    case("qlinearmatmul", "QLinearMatMul,QuantizeLinear",
         [quantize("qa", "a", "sa", "za"), quantize("qb", "b", "sb", "zb"),
          helper.make_node("QLinearMatMul", ["qa", "sa", "za", "qb", "sb", "zb", "sy", "zy"], ["y"], name="qlinearmatmul")],
         [("a", qa), ("b", qb)], ["y"], scalars, opset=21, oracle=[np_requantize((np_quantize(qa, 0.05, 120, 0, 255) - 120)
                                                                                  @ (np_quantize(qb, 0.02, -2, -128, 127) + 2))])
    case("convinteger", "ConvInteger,QuantizeLinear",
         [quantize("qa", "a", "sa", "za"), quantize("qb", "b", "sb", "zb"),
          helper.make_node("ConvInteger", ["qa", "qb", "za", "zb"], ["y"], name="convinteger", pads=[1, 1, 1, 1])],
         [("a", data((1, 2, 5, 5), 100) * 4), ("b", data((3, 2, 3, 3), 101))], ["y"], scalars[:4], opset=21)
    ca, cb = data((1, 2, 5, 5), 102) * 4, data((3, 2, 3, 3), 103)
    case("qlinearconv", "QLinearConv,QuantizeLinear",
         [quantize("qa", "a", "sa", "za"), quantize("qb", "b", "sb", "zb"),
          helper.make_node("QLinearConv", ["qa", "sa", "za", "qb", "sb", "zb", "sy", "zy"], ["y"], name="qlinearconv", pads=[1, 1, 1, 1])],
         [("a", ca), ("b", cb)], ["y"], scalars, opset=21,
         oracle=[np_requantize(np_conv_pad1(np_quantize(ca, 0.05, 120, 0, 255) - 120, np_quantize(cb, 0.02, -2, -128, 127) + 2))])


def main():
    out = sys.argv[1]
    build()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    os.makedirs(out, exist_ok=True)
    lines = []
    for name, op, model, inputs, oracle in cases:
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        onnx.save(model, os.path.join(d, "model.onnx"))
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = {n: a for n, a in inputs}
        for k, (n, a) in enumerate(inputs):
            np.save(os.path.join(d, f"input_{k}.npy"), a)
        for k, y in enumerate(oracle if oracle is not None else session.run(None, feeds)):
            np.save(os.path.join(d, f"output_{k}.npy"), y)
        lines.append(f"{name}\t{op}\t{'numpy' if oracle is not None else 'onnxruntime'}\n")
    with open(os.path.join(out, "cases.txt"), "w") as f:
        f.writelines(lines)
    print(f"{len(lines)} cases")


if __name__ == "__main__":
    main()
