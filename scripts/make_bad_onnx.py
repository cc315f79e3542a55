"""Writes hostile and malformed ONNX files for Kiln's error-handling tests.

Usage: python make_bad_onnx.py OUT_DIR
Each file is named for what is wrong with it; expected.txt lists "file<TAB>expected message part".
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def model(nodes, inputs, outputs, inits=(), opset=17, **kw):
    g = helper.make_graph(nodes, "bad", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], **kw)


def x(name="x", shape=(1, 4)):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def relu(i="x", o="y", name="relu"):
    return helper.make_node("Relu", [i], [o], name=name)


def save(out, name, m, expected):
    with open(os.path.join(out, name), "wb") as f:
        f.write(m.SerializeToString() if not isinstance(m, bytes) else m)
    return (name, expected)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    cases = []
    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")

    bad = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    bad.raw_data = bad.raw_data[:-4]
    cases.append(save(out, "raw_data_short.onnx", model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x()], [x("y")], [bad]),
                      "raw_data holds 60 bytes"))
    neg = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, -4])
    cases.append(save(out, "negative_dims.onnx", model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x()], [x("y")], [neg]),
                      "dimensions [4, -4] are negative or too large"))
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40])
    cases.append(save(out, "huge_dims.onnx", model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x()], [x("y")], [huge]),
                      "are negative or too large"))
    typed = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], float_data=[1.0] * 7)
    cases.append(save(out, "float_data_count.onnx", model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x()], [x("y")], [typed]),
                      "float_data holds 7 values"))
    cases.append(save(out, "missing_input.onnx", model([relu("nothing")], [x()], [x("y")]), "undefined value 'nothing'"))
    cycle = [helper.make_node("Add", ["x", "b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2")]
    cases.append(save(out, "cycle.onnx", model(cycle, [x()], [x("b")]), "cycle through nodes"))
    unsup = [helper.make_node("DepthToSpace", ["x"], ["a"], name="d1", blocksize=1), helper.make_node("GridSample", ["a", "x"], ["b"], name="g1"),
             helper.make_node("DepthToSpace", ["b"], ["y"], name="d2", blocksize=1)]
    cases.append(save(out, "unsupported_ops.onnx", model(unsup, [x()], [x("y")]),
                      "unsupported ops: DepthToSpace (opset 17), first used by node 'd1'; GridSample (opset 17), first used by node 'g1'"))
    cases.append(save(out, "old_opset.onnx", model([relu()], [x()], [x("y")], opset=5), "opset 5 is not supported"))
    cases.append(save(out, "no_default_opset.onnx", helper.make_model(helper.make_graph([relu()], "g", [x()], [x("y")]),
                      opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)]), "imports no opset of the default ONNX domain"))
    cases.append(save(out, "string_input.onnx", model([relu()], [helper.make_tensor_value_info("x", TensorProto.STRING, [1])], [x("y")]),
                      "element type STRING"))
    then = helper.make_graph([relu()], "then", [], [x("y")])
    iff = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=then, name="if")
    cases.append(save(out, "graph_attribute.onnx", model([iff], [helper.make_tensor_value_info("c", TensorProto.BOOL, [])], [x("y")]),
                      "graphs, sparse tensors and type protos are not supported"))
    cases.append(save(out, "duplicate_initializer.onnx", model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x()], [x("y")], [w, w]),
                      "initializer 'w' is defined twice"))
    cases.append(save(out, "shape_mismatch.onnx", model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x("x", (1, 3))], [x("y")], [w]),
                      "inner dimensions differ"))
    cases.append(save(out, "bad_attribute_type.onnx", model([helper.make_node("Flatten", ["x"], ["y"], axis="one")], [x()], [x("y")]),
                      "attribute 'axis' must be int, got string"))

    def external(name, location, extra=None, expected=""):
        t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], data_location=TensorProto.EXTERNAL)
        for k, v in [("location", location)] + (extra or []):
            e = t.external_data.add()
            e.key, e.value = k, v
        cases.append(save(out, name, model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x()], [x("y")], [t]), expected))

    with open(os.path.join(out, "weights.bin"), "wb") as f:
        f.write(np.ones(8, np.float32).tobytes())  # 32 bytes: too few for 4×4
    external("external_parent.onnx", "../secret.bin", expected="leaves the model's folder")
    external("external_absolute.onnx", "/etc/passwd", expected="leaves the model's folder")
    external("external_missing.onnx", "nowhere.bin", expected="cannot open external data file 'nowhere.bin'")
    external("external_short.onnx", "weights.bin", expected="holds 32 bytes, the tensor needs 64")
    external("external_offset.onnx", "weights.bin", [("offset", "-5")], expected="offset '-5' is not a non-negative integer")
    if not os.path.lexists(os.path.join(out, "escape.bin")):
        os.symlink("/etc/passwd", os.path.join(out, "escape.bin"))
    external("external_symlink.onnx", "escape.bin", expected="leaves the model's folder")

    # Allocation bombs: sizes claimed by the file, refused before anything is allocated.
    bomb_input = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1 << 20, 1 << 20, 1 << 20])
    cases.append(save(out, "input_bomb.onnx", model([relu()], [bomb_input], [x("y")]), "larger than the limit"))
    cos = helper.make_node("ConstantOfShape", ["s"], ["y"], name="cos")
    shape = numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "s")
    cases.append(save(out, "constant_of_shape_bomb.onnx", model([cos], [x()], [x("y")], [shape]), "larger than the limit"))
    claims = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 28], raw_data=b"\0" * 16)
    cases.append(save(out, "raw_data_claims_1gib.onnx", model([helper.make_node("MatMul", ["x", "w"], ["y"])], [x()], [x("y")], [claims]),
                      "holds 16 bytes"))
    pads = numpy_helper.from_array(np.array([0, 1 << 62, 0, 1 << 62], np.int64), "p")
    cases.append(save(out, "pad_bomb.onnx", model([helper.make_node("Pad", ["x", "p"], ["y"], name="pad")], [x()], [x("y")], [pads]),
                      "are larger than"))

    good = model([relu()], [x()], [x("y")]).SerializeToString()
    with open(os.path.join(out, "expected.txt"), "w") as f:
        for name, expected in cases:
            f.write(f"{name}\t{expected}\n")
    with open(os.path.join(out, "good.onnx"), "wb") as f:
        f.write(good)


if __name__ == "__main__":
    main()
