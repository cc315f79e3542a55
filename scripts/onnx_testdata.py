"""Writes ONNX's backend test data in the on-disk layout `kiln conformance` reads.

The onnx wheel (1.23) ships the node test generators but not their data, so this script runs
the generators and writes, per test, `model.onnx` and `test_data_set_N/{input,output}_K.pb`.
It also copies the shipped `simple`, `pytorch-converted` and `pytorch-operator` folders, and
lays out the nine `light_*` models with the input ONNX's own runner uses for them
(`arange(n)/n` in the input's shape) and their shipped reference output.

Usage: python onnx_testdata.py OUT_DIR
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def write_tensor(path, value, name):
    if isinstance(value, onnx.TensorProto):
        proto = value
    else:
        proto = numpy_helper.from_array(np.asarray(value), name)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


def write_case(root, case):
    folder = os.path.join(root, case.name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    graph = case.model.graph
    for i, (inputs, outputs) in enumerate(case.data_sets):
        d = os.path.join(folder, f"test_data_set_{i}")
        os.makedirs(d)
        for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output)):
            for j, value in enumerate(values):
                if not infos[j].type.HasField("tensor_type"):
                    # Sequences, maps and optionals: Kiln has no such values; leave a marker.
                    open(os.path.join(d, f"{kind}_{j}.unsupported"), "w").close()
                    continue
                write_tensor(os.path.join(d, f"{kind}_{j}.pb"), value, infos[j].name)


def light_models(root):
    folder = os.path.join(DATA, "light")
    for file in sorted(os.listdir(folder)):
        if not file.endswith(".onnx"):
            continue
        name = file[: -len(".onnx")]
        model = onnx.load(os.path.join(folder, file))
        out = os.path.join(root, name)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(os.path.join(out, "test_data_set_0"))
        shutil.copy(os.path.join(folder, file), os.path.join(out, "model.onnx"))
        inits = {i.name for i in model.graph.initializer}
        k = 0
        for x in model.graph.input:
            if x.name in inits:
                continue
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in x.type.tensor_type.shape.dim)
            n = int(np.prod(shape))
            value = (np.arange(n).reshape(shape) / n).astype(np.float32)
            write_tensor(os.path.join(out, "test_data_set_0", f"input_{k}.pb"), value, x.name)
            k += 1
        for j in range(len(model.graph.output)):
            shutil.copy(os.path.join(folder, f"{name}_output_{j}.pb"), os.path.join(out, "test_data_set_0", f"output_{j}.pb"))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    node_root = os.path.join(out, "node")
    os.makedirs(node_root, exist_ok=True)
    count = 0
    for case in node_cases.collect_testcases():
        write_case(node_root, case)
        count += 1
    for kind in ("simple", "pytorch-converted", "pytorch-operator"):
        dst = os.path.join(out, kind)
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(os.path.join(DATA, kind), dst)
    light_models(os.path.join(out, "light"))
    with open(os.path.join(out, "VERSION"), "w") as f:
        f.write(f"onnx {onnx.__version__}\n")
    print(f"onnx_testdata: {count} node tests and the model folders written to {out}")


if __name__ == "__main__":
    main()
