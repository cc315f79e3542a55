"""Independent checks of a model exported by `kiln train` on the MNIST demo's test set.

  python demo_check.py prepare MODEL.onnx IMAGES.idx3-ubyte.gz FIRST OUT_DIR
      Splits the IDX file per class (images after the first FIRST of each class, in file
      order, are the test set), normalises them with the mean and std stored in the model's
      metadata (x = (pixel/255 - mean)/std), writes OUT_DIR/test.npy and OUT_DIR/labels.npy.
  python demo_check.py compare MODEL.onnx OUT_DIR KILN_LOGITS.npy
      Runs onnx.checker (full check) and onnxruntime on OUT_DIR/test.npy; compares with
      Kiln's logits (max relative error <= 1e-4, top-1 identical on every image); prints the
      accuracy onnxruntime's logits give. Exit code 1 when a check fails.

  python demo_check.py pngs IMAGES.idx3-ubyte.gz FIRST OUT_DIR
      Writes the same test images as 8-bit grey PNGs (Pillow) in OUT_DIR/<label>/<index>.png.

Preprocessing is written here from the metadata, not taken from Kiln, so a wrong stored
mean/std or a layout mistake shows up as an accuracy difference.
"""
import gzip
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def read_idx(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * rank).reshape(dims)


def prepare(model_path, images_path, first, out_dir):
    meta = {p.key: p.value for p in onnx.load(model_path).metadata_props}
    mean = np.array(json.loads(meta["kiln.mean"]), np.float32)
    std = np.array(json.loads(meta["kiln.std"]), np.float32)
    images = read_idx(images_path)
    labels = read_idx(images_path.replace("-images-idx3-ubyte", "-labels-idx1-ubyte"))
    seen = np.zeros(10, int)
    keep = []
    for i, label in enumerate(labels):
        if seen[label] >= first:
            keep.append(i)
        seen[label] += 1
    x = images[keep].astype(np.float32)[:, None, :, :] / 255.0
    x = (x - mean[None, :, None, None]) / std[None, :, None, None]
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "test.npy"), x.astype(np.float32))
    np.save(os.path.join(out_dir, "labels.npy"), labels[keep].astype(np.int64))
    print(f"   {len(keep)} test images, normalised with the model's stored mean {mean} and std {std}")


def pngs(images_path, first, out_dir, part="test"):
    """The test images (after the first `first` of each class), or with part "train" the
    training pool (the first `first`), as PNG files in one folder per class."""
    from PIL import Image
    images = read_idx(images_path)
    labels = read_idx(images_path.replace("-images-idx3-ubyte", "-labels-idx1-ubyte"))
    seen = np.zeros(10, int)
    written = 0
    for i, label in enumerate(labels):
        if (seen[label] >= first) == (part == "test"):
            os.makedirs(os.path.join(out_dir, str(label)), exist_ok=True)
            Image.fromarray(images[i], "L").save(os.path.join(out_dir, str(label), f"{i:04d}.png"))
            written += 1
        seen[label] += 1
    print(f"   {written} {part} images written as PNG files to {out_dir}/<class>/")


def checked_ort_logits(model_path, out_dir):
    """onnx.checker's full check of the model, then onnxruntime's logits on the prepared test
    set, and its labels."""
    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    x = np.load(os.path.join(out_dir, "test.npy"))
    labels = np.load(os.path.join(out_dir, "labels.npy"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0], labels


def compare(model_path, out_dir, kiln_logits):
    ort_logits, labels = checked_ort_logits(model_path, out_dir)
    kiln = np.load(kiln_logits)
    rel = np.abs(kiln - ort_logits).max() / np.abs(ort_logits).max()
    same = int((kiln.argmax(1) == ort_logits.argmax(1)).sum())
    acc = float((ort_logits.argmax(1) == labels).mean())
    print(f"   onnx.checker (full check) passed; onnxruntime vs kiln: max relative error {rel:.2e}, "
          f"same top-1 on {same} of {len(labels)} images; onnxruntime's top-1 accuracy {100 * acc:.1f}%")
    ok = rel <= 1e-4 and same == len(labels)
    if not ok:
        print("   CHECK FAILED")
    return ok


def quantized(model_path, out_dir, kiln_logits, float_logits):
    """The int8 model in onnxruntime against Kiln (the same top-1 on at least 99.5 % of the
    test images: both compute the QDQ model, onnxruntime in integers, Kiln in f32 on the
    quantization grid, so a value on a rounding boundary may land one step apart), and its
    top-1 agreement with the float model."""
    ort_logits, labels = checked_ort_logits(model_path, out_dir)
    kiln, reference = np.load(kiln_logits), np.load(float_logits)
    same = int((kiln.argmax(1) == ort_logits.argmax(1)).sum())
    agree = int((kiln.argmax(1) == reference.argmax(1)).sum())
    print(f"   onnxruntime runs the int8 model: same top-1 as kiln on {same} of {len(labels)} images, top-1 accuracy "
          f"{100 * float((ort_logits.argmax(1) == labels).mean()):.1f}% (kiln {100 * float((kiln.argmax(1) == labels).mean()):.1f}%, "
          f"f32 {100 * float((reference.argmax(1) == labels).mean()):.1f}%); int8 and f32 agree on {agree} of {len(labels)}")
    ok = same >= 0.995 * len(labels)
    if not ok:
        print("   CHECK FAILED")
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    elif sys.argv[1] == "pngs":
        pngs(sys.argv[2], int(sys.argv[3]), sys.argv[4], *sys.argv[5:6])
    elif sys.argv[1] == "quantized":
        sys.exit(0 if quantized(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]) else 1)
    elif sys.argv[1] == "compare":
        sys.exit(0 if compare(sys.argv[2], sys.argv[3], sys.argv[4]) else 1)
    else:
        sys.exit(__doc__)
