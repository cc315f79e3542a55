"""Fixed-batch variants of an ONNX classifier, a class-per-subfolder image folder, and
onnxruntime's probabilities for every image run on its own: the oracle of the batch tests.

Usage: python batch_models.py DYNAMIC.onnx OUT_DIR [IMAGES]

DYNAMIC.onnx has a symbolic batch (`kiln convert` writes one) and ends in Flatten → Gemm.
Writes into OUT_DIR:
  dynamic.onnx   the model as given
  fixed1.onnx    the batch written as 1 in the input and output (torch.onnx.export's default)
  fixed4.onnx    the batch written as 4
  baked1.onnx    fixed1 with Flatten replaced by Reshape to the constant [1, -1], as exporters
                 write `x.view(x.size(0), -1)` at a static batch: the batch cannot be rebound
  baked4.onnx    the same at 4
  images/D/*.png IMAGES (default 23) 28×28 grey digits of data/mnist5k in a folder per label
  expected.json  {"files": [relative paths], "labels": [...], "probabilities": {variant:
                 [[softmax row] per file]}}: onnxruntime, one image per run (padded with zero
                 images to a fixed batch of 4), pixels / 255 as Kiln's default preprocessing
"""
import gzip
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def with_batch(model, n, baked):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for v in list(g.input) + list(g.output):
        d = v.type.tensor_type.shape.dim[0]
        d.Clear()
        d.dim_value = n
    del g.value_info[:]
    if baked:
        k = next(i for i, node in enumerate(g.node) if node.op_type == "Flatten")
        old = g.node[k]
        shape_name = old.name + "_shape"
        g.initializer.append(numpy_helper.from_array(np.array([n, -1], dtype=np.int64), shape_name))
        g.node.remove(old)
        g.node.insert(k, helper.make_node("Reshape", [old.input[0], shape_name], list(old.output), name=old.name))
    onnx.checker.check_model(m, full_check=True)
    return m


def digits(count):
    with gzip.open(os.path.join(ROOT, "data/mnist5k/mnist5k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(ROOT, "data/mnist5k/mnist5k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    # The sample is sorted by label: take images spread over it, so every class appears.
    pick = [k * len(labels) // count + k % 7 for k in range(count)]
    return images[pick], labels[pick]


def softmax(z):
    z = z.astype(np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def main():
    source, out = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 23
    os.makedirs(out, exist_ok=True)
    model = onnx.load(source)
    variants = {"dynamic": (model, None), "fixed1": (with_batch(model, 1, False), 1), "fixed4": (with_batch(model, 4, False), 4),
                "baked1": (with_batch(model, 1, True), 1), "baked4": (with_batch(model, 4, True), 4)}
    for name, (m, _) in variants.items():
        onnx.save(m, os.path.join(out, name + ".onnx"))

    images, labels = digits(count)
    files = []
    for k, (img, label) in enumerate(zip(images, labels)):
        rel = f"{label}/digit{k:03d}.png"
        os.makedirs(os.path.join(out, "images", str(label)), exist_ok=True)
        Image.fromarray(img, "L").save(os.path.join(out, "images", rel))
        files.append(rel)
    order = sorted(range(count), key=lambda k: files[k].encode())

    expected = {"files": [files[k] for k in order], "labels": [int(labels[k]) for k in order], "probabilities": {}}
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for name, (m, fixed) in variants.items():
        session = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
        inp = session.get_inputs()[0].name
        rows = []
        for k in order:
            x = np.zeros((fixed or 1, 1, 28, 28), np.float32)
            x[0, 0] = images[k].astype(np.float32) / 255
            rows.append(softmax(session.run(None, {inp: x})[0][0]).tolist())
        expected["probabilities"][name] = rows
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
