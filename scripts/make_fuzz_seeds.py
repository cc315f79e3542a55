"""Writes the seed corpora of Kiln's fuzz targets into fuzz/corpus/TARGET/ (committed).

Usage: python make_fuzz_seeds.py KILN_BINARY
Seeds are small real files: ONNX models of one or a few nodes for the supported ops (written
with onnx.helper) and the hostile models of make_bad_onnx.py; the shipped text IR networks;
.npy and .pb tensors of every dtype; small PNGs and JPEGs of image_corpus.py; a checkpoint of
a tiny network trained one epoch by `kiln train` (its last 8 bytes, the checksum, cut: the
fuzz target appends the right one); preprocessing metadata. Run again to regenerate; inputs
that fuzzing found (crashes fixed since) live beside them as crash-* and stay.
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def target(name):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "seed-*")):
        os.remove(f)
    return d


def write(d, name, data):
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def onnx_seeds():
    d = target("onnx")
    f = TensorProto.FLOAT

    def vi(name, shape, t=f):
        return helper.make_tensor_value_info(name, t, shape)

    def model(name, nodes, inputs, outputs, inits=(), opset=17):
        g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        write(d, name + ".onnx", m.SerializeToString())

    w = numpy_helper.from_array(np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) / 10, "w")
    b = numpy_helper.from_array(np.ones(2, np.float32), "b")
    model("conv", [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="c", pads=[1, 1, 1, 1], strides=[2, 2])],
          [vi("x", ["N", 3, 5, 5])], [vi("y", ["N", 2, 3, 3])], [w, b])
    model("conv-relu-pool", [helper.make_node("Conv", ["x", "w"], ["c"], name="c", pads=[1, 1, 1, 1]),
                             helper.make_node("Relu", ["c"], ["r"], name="r"),
                             helper.make_node("MaxPool", ["r"], ["p"], name="p", kernel_shape=[2, 2], strides=[2, 2]),
                             helper.make_node("GlobalAveragePool", ["p"], ["g"], name="g"),
                             helper.make_node("Flatten", ["g"], ["y"], name="f")],
          [vi("x", [1, 3, 4, 4])], [vi("y", [1, 2])], [w])
    gw = numpy_helper.from_array(np.ones((4, 3), np.float32), "gw")
    model("gemm", [helper.make_node("Gemm", ["x", "gw"], ["y"], name="g", transB=1, alpha=0.5)],
          [vi("x", ["N", 3])], [vi("y", ["N", 4])], [gw])
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "s")
    model("reshape", [helper.make_node("Reshape", ["x", "s"], ["y"], name="r")], [vi("x", [1, 2, 3])], [vi("y", [1, 6])], [shape])
    st, en, ax = (numpy_helper.from_array(np.array(v, np.int64), n) for v, n in [([0], "st"), ([2], "en"), ([1], "ax")])
    model("slice", [helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"], name="s")], [vi("x", [2, 4])], [vi("y", [2, 2])], [st, en, ax])
    model("concat-add", [helper.make_node("Concat", ["x", "x"], ["c"], name="c", axis=1),
                         helper.make_node("Add", ["c", "c"], ["y"], name="a")], [vi("x", [1, 2])], [vi("y", [1, 4])])
    model("shape-gather", [helper.make_node("Shape", ["x"], ["s"], name="s"),
                           helper.make_node("Gather", ["s", "i"], ["g"], name="g", axis=0),
                           helper.make_node("Unsqueeze", ["g", "ax"], ["u"], name="u"),
                           helper.make_node("Concat", ["u", "m"], ["t"], name="c", axis=0),
                           helper.make_node("Reshape", ["x", "t"], ["y"], name="r")],
          [vi("x", ["N", 2, 3])], [vi("y", ["N", 6])],
          [numpy_helper.from_array(np.array(0, np.int64), "i"), numpy_helper.from_array(np.array([0], np.int64), "ax"),
           numpy_helper.from_array(np.array([-1], np.int64), "m")])
    scale, bias = numpy_helper.from_array(np.ones(3, np.float32), "sc"), numpy_helper.from_array(np.zeros(3, np.float32), "bi")
    model("batchnorm-softmax", [helper.make_node("BatchNormalization", ["x", "sc", "bi", "sc", "sc"], ["n"], name="bn"),
                                helper.make_node("Softmax", ["n"], ["y"], name="sm", axis=1)],
          [vi("x", [2, 3, 1, 1])], [vi("y", [2, 3, 1, 1])], [scale, bias])
    model("old-opset", [helper.make_node("Softmax", ["x"], ["y"], name="sm")], [vi("x", [2, 3])], [vi("y", [2, 3])], opset=9)
    model("pad-transpose", [helper.make_node("Pad", ["x", "p"], ["q"], name="p"),
                            helper.make_node("Transpose", ["q"], ["y"], name="t", perm=[1, 0])],
          [vi("x", [2, 3])], [vi("y", [5, 4])], [numpy_helper.from_array(np.array([1, 0, 1, 1], np.int64), "p")])
    model("clip-mul-sub", [helper.make_node("Clip", ["x", "lo", "hi"], ["c"], name="c"),
                           helper.make_node("Mul", ["c", "x"], ["m"], name="m"),
                           helper.make_node("Sub", ["m", "x"], ["y"], name="s")],
          [vi("x", [3])], [vi("y", [3])], [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                                          numpy_helper.from_array(np.array(6, np.float32), "hi")])
    # The hostile models of the error-handling tests.
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/make_bad_onnx.py"), tmp], check=True, stdout=subprocess.DEVNULL)
        for p in sorted(glob.glob(os.path.join(tmp, "*.onnx"))):
            if os.path.getsize(p) <= 64 << 10:
                shutil.copy(p, os.path.join(d, "seed-bad-" + os.path.basename(p)))


def text_seeds():
    d = target("text")
    for p in sorted(glob.glob(os.path.join(ROOT, "models", "*.kiln"))):
        if os.path.getsize(p) <= 16 << 10:
            shutil.copy(p, os.path.join(d, "seed-" + os.path.basename(p)))
    write(d, "small.kiln", b"""graph tiny {
  input x: f32[N, 3, 8, 8]
  param w: f32[4, 3, 3, 3] = kaiming_normal(fan_in)
  param b: f32[4] = zeros
  c: f32[N, 4, 8, 8] = Conv(x, w, b) {pads=[1, 1, 1, 1]}
  r = Relu(c)
  g = GlobalAveragePool(r)
  y = Flatten(g)
  output y
}
""")

def tensor_seeds():
    npy, pb = target("npy"), target("pb")
    rng = np.random.default_rng(0)
    arrays = {"f32": rng.standard_normal((2, 3)).astype(np.float32), "f64": np.arange(4.0), "f16": np.ones((2, 2), np.float16),
              "i64": np.arange(6, dtype=np.int64).reshape(1, 2, 3), "i32": np.array([1, -2], np.int32), "u8": np.arange(5, dtype=np.uint8),
              "i8": np.array([-1, 1], np.int8), "bool": np.array([True, False]), "scalar": np.array(3.5, np.float32),
              "empty": np.zeros((0, 3), np.float32)}
    for name, a in arrays.items():
        with tempfile.TemporaryFile() as f:
            np.save(f, a)
            f.seek(0)
            write(npy, name + ".npy", f.read())
        write(pb, name + ".pb", numpy_helper.from_array(a, name).SerializeToString())
    with tempfile.TemporaryFile() as f:
        np.lib.format.write_array(f, arrays["f32"], version=(2, 0))
        f.seek(0)
        write(npy, "v2.npy", f.read())


def image_seeds():
    png, jpeg = target("png"), target("jpeg")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/image_corpus.py"), tmp], check=True, stdout=subprocess.DEVNULL)
        for p in sorted(glob.glob(os.path.join(tmp, "*"))):
            name = os.path.basename(p)
            if os.path.getsize(p) > 8 << 10:
                continue
            if name.endswith(".png"):
                shutil.copy(p, os.path.join(png, "seed-" + name))
            elif name.endswith(".jpg") or name.endswith(".jpeg"):
                shutil.copy(p, os.path.join(jpeg, "seed-" + name))


def checkpoint_seeds(kiln):
    d = target("checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        net = os.path.join(tmp, "tiny.kiln")
        with open(net, "w") as f:
            f.write("""graph tiny {
  input image: f32[N, 1, 28, 28]
  param w: f32[10, 784] = kaiming_normal(fan_in)
  param b: f32[10] = zeros
  x: f32[N, 784] = Flatten(image)
  logits: f32[N, 10] = Gemm(x, w, b) {transB=1}
  output logits: f32[N, 10]
}
""")
        run = os.path.join(tmp, "run")
        subprocess.run([kiln, "train", "--model", net, "--data", os.path.join(ROOT, "data/mnist5k/mnist5k-images-idx3-ubyte.gz"),
                        "--split-first", "40", "--epochs", "1", "--batch", "16", "--out", run],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(run, "checkpoint.kcp"), "rb") as f:
            data = f.read()
        write(d, "tiny.kcp", data[:-8])


def metadata_seeds():
    d = target("metadata")
    for name, values in {
        "default": [b"", b"", b"", b"", b""],
        "imagenet": [b"[3, 224, 224]", b"shorter-side", b"256", b"[0.485, 0.456, 0.406]", b"[0.229, 0.224, 0.225]"],
        "mnist": [b"[1, 28, 28]", b"direct", b"", b"[0.1307]", b"[0.3081]"],
        "bad": [b"[3, -1, 5]", b"sideways", b"-3", b"[1, 2]", b"[0]"],
    }.items():
        write(d, name, bytes([3, 32, 32]) + b"\0" + b"\0".join(values))


def main():
    kiln = sys.argv[1]
    onnx_seeds()
    text_seeds()
    tensor_seeds()
    image_seeds()
    checkpoint_seeds(kiln)
    metadata_seeds()
    for t in sorted(os.listdir(CORPUS)):
        files = os.listdir(os.path.join(CORPUS, t))
        print(f"{t}: {len(files)} files, {sum(os.path.getsize(os.path.join(CORPUS, t, f)) for f in files)} bytes")


if __name__ == "__main__":
    main()
