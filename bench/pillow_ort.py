"""The Python pipeline `bench/infer_folder.sh` races: Pillow decode + numpy preprocessing +
onnxruntime, batched, over every PNG under a folder (sorted), top-5 per image to a CSV.

Usage: python pillow_ort.py MODEL.onnx DIR OUT.csv --batch B --threads T
Prints the wall time and images/s (decoding, preprocessing, inference and writing).
"""
import argparse
import json
import os
import time

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image


def main():
    a = argparse.ArgumentParser()
    a.add_argument("model"), a.add_argument("dir"), a.add_argument("out")
    a.add_argument("--batch", type=int, default=128)
    a.add_argument("--threads", type=int, default=2)
    args = a.parse_args()
    start = time.perf_counter()
    meta = {p.key: p.value for p in onnx.load(args.model, load_external_data=False).metadata_props}
    mean = np.array(json.loads(meta.get("kiln.mean", "[0, 0, 0]")), np.float32)[:, None, None]
    std = np.array(json.loads(meta.get("kiln.std", "[1, 1, 1]")), np.float32)[:, None, None]
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(args.dir) for f in fs if f.endswith(".png"))
    with open(args.out, "w") as out:
        for i in range(0, len(files), args.batch):
            chunk = files[i:i + args.batch]
            x = np.stack([(np.asarray(Image.open(f).convert("RGB"), np.float32).transpose(2, 0, 1) / 255 - mean) / std for f in chunk])
            logits = session.run(None, {name: x.astype(np.float32)})[0]
            e = np.exp(logits - logits.max(1, keepdims=True))
            p = e / e.sum(1, keepdims=True)
            top = np.argsort(-p, 1)[:, :5]
            for f, t, row in zip(chunk, top, p):
                out.write(f + "," + ",".join(f"{j},{row[j]:.6f}" for j in t) + "\n")
    seconds = time.perf_counter() - start
    print(f"{seconds:.3f} s {len(files) / seconds:.1f} images/s")


if __name__ == "__main__":
    main()
