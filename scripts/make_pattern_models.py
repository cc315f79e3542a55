"""Writes small models with the transformer-path patterns Kiln compiles (decomposed GELU,
MatMul with bias/residual/activation epilogues, attention with Split and a transposed
scaled key, Expand/Concat/Tile, position embeddings, activations, Einsum, reductions and normalisations, Resize, depthwise convolutions, SiLU), with inputs and
onnxruntime's outputs.

Usage: python make_pattern_models.py OUT_DIR
For each case: CASE.onnx, CASE.input.npy (input "x", batch 2) and CASE.expected.npy ("y").
Weights are seeded random values; the graphs are built here with onnx.helper.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

ort.set_default_logger_severity(3)
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(7)
n = helper.make_node


def w(name, *shape):
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.2).astype(np.float32), name)


def c(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.array(value, dtype), name)


def build(out, name, nodes, in_shape, inits=(), opset=17):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"] + list(in_shape[1:]))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    path = os.path.join(out, name + ".onnx")
    onnx.save(m, path)
    x = np.random.default_rng(len(name)).standard_normal(in_shape).astype(np.float32)
    y = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.save(os.path.join(out, name + ".input.npy"), x)
    np.save(os.path.join(out, name + ".expected.npy"), y)


def gelu_nodes(x, y, p, form):
    """0.5·x·(1 + erf(x/√2)) as the classic exporter writes it (form "div") or with Mul by 1/√2."""
    first = n("Div", [x, "sqrt2"], [p + "d"]) if form == "div" else n("Mul", [x, "rsqrt2"], [p + "d"])
    return [first, n("Erf", [p + "d"], [p + "e"]), n("Add", [p + "e", "one"], [p + "a"]), n("Mul", [x, p + "a"], [p + "m"]),
            n("Mul", [p + "m", "half"], [y])]


CONSTS = [c("sqrt2", np.sqrt(2)), c("rsqrt2", 1 / np.sqrt(2)), c("one", 1.0), c("half", 0.5)]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    T, D = 5, 24
    # An MLP block: LayerNorm → fc1 + bias → GELU (decomposed) → fc2 + bias → + residual.
    for form in ["div", "mul"]:
        build(out, f"mlp_gelu_{form}", [
            n("LayerNormalization", ["x", "ln_s", "ln_b"], ["h"], axis=-1),
            n("MatMul", ["h", "w1"], ["h1"]), n("Add", ["h1", "b1"], ["h2"]),
            *gelu_nodes("h2", "g", "gelu", form),
            n("MatMul", ["g", "w2"], ["h3"]), n("Add", ["b2", "h3"], ["h4"]), n("Add", ["x", "h4"], ["y"]),
        ], (2, T, D), [w("ln_s", D), w("ln_b", D), w("w1", D, 40), w("b1", 40), w("w2", 40, D), w("b2", D)] + CONSTS)
    # Attention: qkv projection, heads by Reshape/Transpose/Split, q·(kᵀ·s), softmax, ·v, back.
    H, Dh = 2, 12
    build(out, "attention", [
        n("MatMul", ["x", "wqkv"], ["qkv0"]), n("Add", ["qkv0", "bqkv"], ["qkv1"]),
        n("Reshape", ["qkv1", "shape5"], ["qkv2"]), n("Transpose", ["qkv2"], ["qkv3"], perm=[2, 0, 3, 1, 4]),
        n("Split", ["qkv3", "split3"], ["q0", "k0", "v0"], axis=0),
        n("Squeeze", ["q0", "axis0"], ["q"]), n("Squeeze", ["k0", "axis0"], ["k"]), n("Squeeze", ["v0", "axis0"], ["v"]),
        n("Mul", ["q", "scale"], ["qs"]), n("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), n("Mul", ["kt", "scale"], ["kts"]),
        n("MatMul", ["qs", "kts"], ["att"]), n("Softmax", ["att"], ["p"], axis=-1), n("MatMul", ["p", "v"], ["o"]),
        n("Transpose", ["o"], ["o1"], perm=[0, 2, 1, 3]), n("Reshape", ["o1", "shape3"], ["o2"]),
        n("MatMul", ["o2", "wo"], ["o3"]), n("Add", ["o3", "bo"], ["o4"]), n("Add", ["x", "o4"], ["y"]),
    ], (2, T, D), [w("wqkv", D, 3 * D), w("bqkv", 3 * D), c("shape5", [0, T, 3, H, Dh], np.int64), c("split3", [1, 1, 1], np.int64),
                   c("axis0", [0], np.int64), c("scale", Dh ** -0.25), c("shape3", [0, T, D], np.int64), w("wo", D, D), w("bo", D)])
    # One image, three heads of 80 tokens: attention in one step, big enough for two threads,
    # which split the three products into parts of their rows.
    TL, HL = 80, 3
    build(out, "attention_long", [
        n("MatMul", ["x", "wqkv"], ["qkv0"]), n("Reshape", ["qkv0", "shape5"], ["qkv2"]),
        n("Transpose", ["qkv2"], ["qkv3"], perm=[2, 0, 3, 1, 4]),
        n("Split", ["qkv3", "split3"], ["q0", "k0", "v0"], axis=0),
        n("Squeeze", ["q0", "axis0"], ["q"]), n("Squeeze", ["k0", "axis0"], ["k"]), n("Squeeze", ["v0", "axis0"], ["v"]),
        n("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), n("MatMul", ["q", "kt"], ["att"]), n("Mul", ["att", "scale"], ["atts"]),
        n("Softmax", ["atts"], ["p"], axis=-1), n("MatMul", ["p", "v"], ["o"]),
        n("Transpose", ["o"], ["o1"], perm=[0, 2, 1, 3]), n("Reshape", ["o1", "shape3"], ["y"]),
    ], (1, TL, D), [w("wqkv", D, 3 * D), c("shape5", [0, TL, 3, HL, D // HL], np.int64), c("split3", [1, 1, 1], np.int64),
                    c("axis0", [0], np.int64), c("scale", (D // HL) ** -0.5), c("shape3", [0, TL, D], np.int64)])
    # Slices of a computed value by Gather with constant indices (torchvision's q, k, v): views
    # into it, the last one overwritten in place by the chain that is its storage's last reader.
    build(out, "slices", [
        n("MatMul", ["x", "w3"], ["h"]), n("Reshape", ["h", "shape4"], ["r"]), n("Transpose", ["r"], ["t"], perm=[2, 0, 1, 3]),
        n("Gather", ["t", "i0"], ["a"], axis=0), n("Gather", ["t", "i1"], ["b"], axis=0), n("Gather", ["t", "im1"], ["c"], axis=0),
        n("Relu", ["a"], ["ra"]), n("Mul", ["b", "wb"], ["mb"]), n("Add", ["ra", "mb"], ["s1"]),
        n("Sigmoid", ["c"], ["sc"]), n("Add", ["sc", "s1"], ["y"]),
    ], (2, T, D), [w("w3", D, 3 * D), c("shape4", [0, T, 3, D], np.int64), c("i0", 0, np.int64), c("i1", 1, np.int64),
                   c("im1", -1, np.int64), w("wb", D)])
    # The same with the probabilities read twice (their row maxima scale the heads' outputs):
    # the softmax joins the q·kᵀ product, the product by v stays a step of its own.
    build(out, "attention_probs", [
        n("MatMul", ["x", "wqkv"], ["qkv0"]), n("Add", ["qkv0", "bqkv"], ["qkv1"]),
        n("Reshape", ["qkv1", "shape5"], ["qkv2"]), n("Transpose", ["qkv2"], ["qkv3"], perm=[2, 0, 3, 1, 4]),
        n("Split", ["qkv3", "split3"], ["q0", "k0", "v0"], axis=0),
        n("Squeeze", ["q0", "axis0"], ["q"]), n("Squeeze", ["k0", "axis0"], ["k"]), n("Squeeze", ["v0", "axis0"], ["v"]),
        n("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]), n("Mul", ["kt", "scale"], ["kts"]),
        n("MatMul", ["q", "kts"], ["att"]), n("Softmax", ["att"], ["p"], axis=-1), n("MatMul", ["p", "v"], ["o"]),
        n("ReduceMax", ["p"], ["pm"], axes=[-1], keepdims=1), n("Mul", ["o", "pm"], ["om"]),
        n("Transpose", ["om"], ["o1"], perm=[0, 2, 1, 3]), n("Reshape", ["o1", "shape3"], ["y"]),
    ], (2, T, D), [w("wqkv", D, 3 * D), w("bqkv", 3 * D), c("shape5", [0, T, 3, H, Dh], np.int64), c("split3", [1, 1, 1], np.int64),
                   c("axis0", [0], np.int64), c("scale", Dh ** -0.5), c("shape3", [0, T, D], np.int64)])
    # A class token expanded to the batch and concatenated, a position embedding added, the
    # token taken back out.
    build(out, "cls_token", [
        n("Shape", ["x"], ["s"]), n("Gather", ["s", "i0"], ["nb"], axis=0), n("Unsqueeze", ["nb", "axis0"], ["nb1"]),
        n("Concat", ["nb1", "one_one"], ["eshape"], axis=0), n("Expand", ["cls", "eshape"], ["ct"]),
        n("Concat", ["ct", "x"], ["t"], axis=1), n("Add", ["t", "pos"], ["tp"]),
        n("Gather", ["tp", "i0"], ["first"], axis=1), n("Gemm", ["first", "head", "hb"], ["y"]),
    ], (2, T, D), [w("cls", 1, 1, D), c("i0", 0, np.int64), c("axis0", [0], np.int64), c("one_one", [1, 1], np.int64),
                   w("pos", 1, T + 1, D), w("head", D, 7), w("hb", 7)])
    build(out, "tile_split", [
        n("Tile", ["x", "reps"], ["t"]), n("Split", ["t"], ["a", "b"], axis=2, num_outputs=2), n("Sub", ["a", "b"], ["d"]),
        n("Unsqueeze", ["d", "axis2"], ["d1"]), n("Expand", ["d1", "eshape"], ["y"]),
    ], (2, 3, 8), [c("reps", [1, 2, 1], np.int64), c("axis2", [2], np.int64), c("eshape", [1, 1, 4, 1], np.int64)], opset=18)
    # Activations on the compiled kernel: standalone, chained with arithmetic, and in a
    # MatMul epilogue (HardSigmoid with its parameters).
    build(out, "activations", [
        n("Erf", ["x"], ["e"]), n("Mul", ["e", "half"], ["e2"]), n("Tanh", ["e2"], ["t"]), n("Exp", ["t"], ["ex"]),
        n("Gelu", ["ex"], ["g"], approximate="tanh"), n("MatMul", ["g", "w"], ["m"]), n("Add", ["m", "b"], ["m1"]),
        n("HardSigmoid", ["m1"], ["hs"], alpha=0.3, beta=0.4), n("Softplus", ["hs"], ["sp"]), n("Elu", ["sp"], ["y"], alpha=0.7),
    ], (2, 4, 9), [w("w", 9, 33), w("b", 33)] + CONSTS, opset=20)
    # Einsum in its matrix-product forms (maxvit's attention, a projection with the output
    # permuted, an ellipsis batch): lowered onto MatMul and kiln.MatMulTransB.
    build(out, "einsum", [
        n("MatMul", ["x", "wk"], ["k"]), n("Einsum", ["x", "k"], ["att"], equation="B H I D, B H J D -> B H I J"),
        n("Softmax", ["att"], ["p"], axis=-1), n("Einsum", ["p", "k"], ["o"], equation="bhij,bhjd->bhid"),
        n("Einsum", ["o", "we"], ["e"], equation="bhid,de->beih"), n("Einsum", ["e", "e"], ["y"], equation="...ij,...kj->...ik"),
    ], (2, 2, 5, 8), [w("wk", 8, 8), w("we", 8, 6)])
    # Reductions over the last and a middle axis, softmax over axis 1, a mask broadcast along
    # two runs of axes (Swin's), InstanceNormalization, GroupNormalization, and a weight
    # transposed in the graph (folded: parameters are constants for inference).
    build(out, "reductions", [
        n("ReduceL2", ["x"], ["l2"], axes=[-1], keepdims=1), n("Clip", ["l2", "eps"], ["l2c"]), n("Div", ["x", "l2c"], ["xn"]),
        n("Softmax", ["xn"], ["s"], axis=1), n("Add", ["s", "mask"], ["m"]),
        n("InstanceNormalization", ["m", "in_s", "in_b"], ["i"], epsilon=1e-3), n("ReduceMean", ["i"], ["r"], axes=[1], keepdims=0),
        n("ReduceMax", ["r"], ["rm"], axes=[-1], keepdims=1), n("Add", ["r", "rm"], ["r2"]),
        n("Transpose", ["wt"], ["w_t"], perm=[1, 0]), n("MatMul", ["r2", "w_t"], ["y"]),
    ], (2, 6, 8, 5), [c("eps", 1e-12), w("mask", 6, 1, 5), w("in_s", 6), w("in_b", 6), w("wt", 7, 5)])
    build(out, "groupnorm", [
        n("GroupNormalization", ["x", "g_s", "g_b"], ["g"], num_groups=3, epsilon=1e-4), n("LogSoftmax", ["g"], ["y"], axis=2),
    ], (2, 6, 4, 5), [w("g_s", 6), w("g_b", 6)], opset=21)
    # LayerNorm as exporters write it before opset 17 (then a residual Add).
    build(out, "layernorm_decomposed", [
        n("ReduceMean", ["x"], ["m"], axes=[-1]), n("Sub", ["x", "m"], ["d"]), n("Pow", ["d", "two"], ["p"]),
        n("ReduceMean", ["p"], ["v"], axes=[-1]), n("Add", ["v", "eps"], ["e"]), n("Sqrt", ["e"], ["s"]), n("Div", ["d", "s"], ["q"]),
        n("Mul", ["q", "ln_s"], ["q1"]), n("Add", ["q1", "ln_b"], ["q2"]), n("Add", ["q2", "x"], ["y"]),
    ], (2, 5, 24), [c("two", 2.0), c("eps", 1e-5), w("ln_s", 24), w("ln_b", 24)], opset=13)
    # Nearest resizing of an input (by scales, then to sizes on two axes): index maps.
    build(out, "resize", [
        n("Resize", ["x", "", "scales"], ["r"], mode="nearest"),
        n("Resize", ["r", "", "", "sizes"], ["y"], mode="nearest", axes=[2, 3], coordinate_transformation_mode="asymmetric",
          nearest_mode="floor"),
    ], (2, 3, 4, 5), [c("scales", [1, 1, 2, 1.5]), c("sizes", [5, 9], np.int64)], opset=18)
    # Depthwise convolutions: MobileNetV2's inverted residual (1×1 expand, ReLU6, 3×3
    # depthwise, ReLU6, 1×1 project, residual), a 5×5 stride-2 depthwise with HardSwish, and a
    # channel multiplier of 2 with dilation and asymmetric padding.
    E = 24
    build(out, "depthwise", [
        n("Conv", ["x", "we", "be"], ["e"]), n("Clip", ["e", "zero", "six"], ["e6"]),
        n("Conv", ["e6", "wd", "bd"], ["d"], group=E, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), n("Clip", ["d", "zero", "six"], ["d6"]),
        n("Conv", ["d6", "wp", "bp"], ["p"]), n("Add", ["p", "x"], ["r"]),
        n("Conv", ["r", "w5", "b5"], ["s"], group=8, kernel_shape=[5, 5], strides=[2, 2], pads=[2, 2, 2, 2]),
        n("HardSwish", ["s"], ["h"]),
        n("Conv", ["h", "wm"], ["y"], group=8, kernel_shape=[3, 3], dilations=[2, 2], pads=[2, 1, 1, 2]),
    ], (2, 8, 13, 11), [w("we", E, 8, 1, 1), w("be", E), w("wd", E, 1, 3, 3), w("bd", E), w("wp", 8, E, 1, 1), w("bp", 8),
                        w("w5", 8, 1, 5, 5), w("b5", 8), w("wm", 16, 1, 3, 3), c("zero", 0.0), c("six", 6.0)])
    # Inverted residual blocks whose expanded tensor is large (≥ 1 MiB an image): the 1×1
    # expansion and the depthwise convolution in one step, by bands of rows — 3×3 stride 1,
    # then 5×5 stride 2 with HardSwish from a second expansion; batch 2 (images over threads)
    # and batch 1 (one image's rows over threads).
    X = 96
    for name, batch in (("expand_depthwise", 2), ("expand_depthwise_b1", 1)):
        build(out, name, [
            n("Conv", ["x", "we", "be"], ["e"]), n("Clip", ["e", "zero", "six"], ["e6"]),
            n("Conv", ["e6", "wd", "bd"], ["d"], group=X, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), n("Clip", ["d", "zero", "six"], ["d6"]),
            n("Conv", ["d6", "wp", "bp"], ["p"]), n("Add", ["p", "x"], ["r"]),
            n("Conv", ["r", "we2"], ["f"]), n("Relu", ["f"], ["f1"]),
            n("Conv", ["f1", "wd2", "bd2"], ["s"], group=X, kernel_shape=[5, 5], strides=[2, 2], pads=[2, 2, 2, 2]),
            n("HardSwish", ["s"], ["y"]),
        ], (batch, 8, 61, 57), [w("we", X, 8, 1, 1), w("be", X), w("wd", X, 1, 3, 3), w("bd", X), w("wp", 8, X, 1, 1), w("bp", 8),
                                w("we2", X, 8, 1, 1), w("wd2", X, 1, 5, 5), w("bd2", X), c("zero", 0.0), c("six", 6.0)])
    # Channel joins at batch 1: a 1×1 and a 3×3 branch concatenated (written straight into
    # the join: no step), then a join with the graph's input (which must stay a copy).
    build(out, "concat_b1", [
        n("Conv", ["x", "wa", "ba"], ["a"]), n("Relu", ["a"], ["a1"]),
        n("Conv", ["x", "wb", "bb"], ["b"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Concat", ["a1", "b"], ["c"], axis=1),
        n("Conv", ["c", "wc"], ["d"]), n("Concat", ["d", "x"], ["y"], axis=1),
    ], (1, 8, 10, 12), [w("wa", 16, 8, 1, 1), w("ba", 16), w("wb", 8, 8, 3, 3), w("bb", 8), w("wc", 8, 24, 1, 1)])
    # SiLU as exporters write it, Sigmoid(x) · x (both operand orders): after a 1×1 convolution
    # (into its epilogue) and after a depthwise one; a squeeze-and-excitation gate (Sigmoid of
    # a pooled branch times the activation, which stays a broadcast Mul); Swish-24 itself.
    build(out, "swish", [
        n("Conv", ["x", "we", "be"], ["e"]), n("Sigmoid", ["e"], ["es"]), n("Mul", ["e", "es"], ["e1"]),
        n("Conv", ["e1", "wd", "bd"], ["d"], group=16, kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Sigmoid", ["d"], ["ds"]), n("Mul", ["ds", "d"], ["d1"]),
        n("GlobalAveragePool", ["d1"], ["g"]), n("Conv", ["g", "wg", "bg"], ["g1"]), n("Sigmoid", ["g1"], ["gs"]),
        n("Mul", ["d1", "gs"], ["se"]), n("Swish", ["se"], ["y"], alpha=0.6),
    ], (2, 8, 9, 7), [w("we", 16, 8, 1, 1), w("be", 16), w("wd", 16, 1, 3, 3), w("bd", 16), w("wg", 16, 16, 1, 1), w("bg", 16)],
        opset=24)
    # Output channels not a multiple of 8 (rexNet's 1×1s): the packed kernel's last partial
    # block made in scratch and copied out with the epilogue (residual, activation); 1×1,
    # 3×3 stride 2 (im2col) and a 1×1 of fewer than 8 outputs; at batch 2 and at batch 1.
    for name, batch in (("remainder", 2), ("remainder_b1", 1)):
        build(out, name, [
            n("Conv", ["x", "w1", "b1"], ["c1"]), n("Add", ["c1", "x"], ["a1"]), n("Relu", ["a1"], ["r1"]),
            n("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), n("Sigmoid", ["c2"], ["s2"]),
            n("Conv", ["s2", "w3"], ["y"]),
        ], (batch, 12, 23, 21), [w("w1", 12, 12, 1, 1), w("b1", 12), w("w2", 20, 12, 3, 3), w("b2", 20), w("w3", 5, 20, 1, 1)])
    # Squeeze-and-excitation: the gate's product x ⊙ s read only by a 1×1 convolution (with a
    # residual) folds into it, the weight's columns scaled per image; at batch 2 and at batch 1.
    for name, batch in (("se_gate", 2), ("se_gate_b1", 1)):
        build(out, name, [
            n("Conv", ["x", "we", "be"], ["e"]), n("Relu", ["e"], ["e1"]),
            n("GlobalAveragePool", ["e1"], ["g"]), n("Conv", ["g", "w1", "b1"], ["g1"]), n("Relu", ["g1"], ["g2"]),
            n("Conv", ["g2", "w2", "b2"], ["g3"]), n("Sigmoid", ["g3"], ["s"]),
            n("Mul", ["e1", "s"], ["m"]), n("Conv", ["m", "wp", "bp"], ["p"]), n("Add", ["p", "x"], ["y"]),
        ], (batch, 8, 9, 11), [w("we", 32, 8, 1, 1), w("be", 32), w("w1", 8, 32, 1, 1), w("b1", 8), w("w2", 32, 8, 1, 1), w("b2", 32),
                               w("wp", 8, 32, 1, 1), w("bp", 8)])
    # Grouped convolutions whose groups have output channels in multiples of 8 (RegNet's): the
    # direct kernel per group (the stride-2 one on its input's phases), with the epilogue; then
    # a group of 4 channels (OpenBLAS per group).
    build(out, "grouped", [
        n("Conv", ["x", "w1", "b1"], ["c1"], group=4, kernel_shape=[3, 3], pads=[1, 1, 1, 1]), n("Relu", ["c1"], ["r1"]),
        n("Conv", ["r1", "w2", "b2"], ["c2"], group=2, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Conv", ["c2", "w3"], ["y"], group=4, kernel_shape=[1, 1]),
    ], (2, 8, 11, 10), [w("w1", 32, 2, 3, 3), w("b1", 32), w("w2", 16, 16, 3, 3), w("b2", 16), w("w3", 16, 4, 1, 1)])
    # One image (its groups split over threads): 5×5 and asymmetric 3×1 grouped kernels, the
    # residual and activation fused (the input scaled by 1/4 to keep the sums near 1, where
    # the test's absolute tolerance of 1e-6 is above float rounding).
    build(out, "grouped_b1", [
        n("Mul", ["x", "quarter"], ["xs"]),
        n("Conv", ["xs", "w1", "b1"], ["c1"], group=3, kernel_shape=[5, 5], pads=[2, 2, 2, 2]), n("Add", ["c1", "xs"], ["a1"]),
        n("Relu", ["a1"], ["r1"]),
        n("Conv", ["r1", "w2"], ["y"], group=3, kernel_shape=[3, 1], pads=[1, 0, 0, 0]),
    ], (1, 24, 9, 13), [c("quarter", 0.25), w("w1", 24, 8, 5, 5), w("b1", 24), w("w2", 48, 8, 3, 1)])

if __name__ == "__main__":
    main()
