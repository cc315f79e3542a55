"""Checks an ONNX model with onnx.checker (full check) and runs it in onnxruntime.

Usage: python ort_check.py MODEL.onnx OUT_DIR NAME=INPUT.npy [NAME=INPUT.npy ...]
Writes each output to OUT_DIR/<output name>.npy and prints the opset and producer.
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main():
    model_path, out_dir = sys.argv[1], sys.argv[2]
    model = onnx.load(model_path)
    onnx.checker.check_model(model, full_check=True)
    feeds = {}
    for spec in sys.argv[3:]:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    os.makedirs(out_dir, exist_ok=True)
    for info, value in zip(session.get_outputs(), outputs):
        np.save(os.path.join(out_dir, info.name + ".npy"), value)
    print(f"opset {model.opset_import[0].version}, producer {model.producer_name}, checker passed")


if __name__ == "__main__":
    main()
