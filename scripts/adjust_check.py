"""Checks, with onnxruntime and numpy, the classifier adjustments `kiln export` folds into a model.

Usage: python adjust_check.py PLAIN.onnx TAUNORM.onnx ADJUSTED.onnx TAU_NORM TAU DATA_DIR KILN_REPORT.json [KILN_REPORT.json ...]
  PLAIN      `kiln export RUN`
  TAUNORM    `kiln export RUN --tau-norm TAU_NORM`
  ADJUSTED   `kiln export RUN --tau-norm TAU_NORM --logit-adjust TAU`
  DATA_DIR   test.npy and labels.npy (demo_check.py prepare)
  reports    `kiln eval --report` JSON files whose confusion matrices must equal the one
             onnxruntime's ADJUSTED outputs give (e.g. of ADJUSTED, and of TAUNORM with
             --logit-adjust TAU).

Checks, from the formulas and not from Kiln's code:
  1. the classifier weight of TAUNORM is PLAIN's with each class's vector divided by its norm
     to the power TAU_NORM (the head: the last Gemm or MatMul with a constant weight);
  2. ADJUSTED's logits − TAUNORM's logits = −TAU·log(prior), prior = kiln.class_counts / their sum;
  3. the confusion matrix of ADJUSTED's argmax on the test images equals each report's.
Exit code 1 when a check fails.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def head_weight(model):
    """(weight as [classes, features], node) of the last Gemm/MatMul with an initializer weight."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in reversed(model.graph.node):
        if node.op_type in ("Gemm", "MatMul") and node.input[1] in inits:
            w = inits[node.input[1]].astype(np.float64)
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            return (w if trans_b else w.T), node
    raise SystemExit("no classifier weight found")


def logits(path, x):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0].astype(np.float64)


def main():
    plain, taunorm, adjusted = sys.argv[1:4]
    t_norm, tau = float(sys.argv[4]), float(sys.argv[5])
    data, reports = sys.argv[6], sys.argv[7:]
    ok = True
    for path in (plain, taunorm, adjusted):
        onnx.checker.check_model(onnx.load(path), full_check=True)

    w, node = head_weight(onnx.load(plain))
    w_tn, _ = head_weight(onnx.load(taunorm))
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    expected = w / norms ** t_norm
    err = np.abs(w_tn - expected).max() / np.abs(expected).max()
    print(f"τ-normalised weight of {node.name} ({node.op_type}): class norms {norms.min():.3f}–{norms.max():.3f}, max relative error {err:.2e}")
    ok &= err < 1e-6

    meta = {p.key: p.value for p in onnx.load(adjusted).metadata_props}
    counts = np.array(json.loads(meta["kiln.class_counts"]), np.float64)
    x = np.load(data + "/test.npy")
    labels = np.load(data + "/labels.npy")
    z_tn, z_adj = logits(taunorm, x), logits(adjusted, x)
    shift = -tau * np.log(counts / counts.sum())
    err = np.abs((z_adj - z_tn) - shift[None, :]).max()
    print(f"adjusted − τ-normalised logits against −τ·log(prior): max error {err:.2e} (shift {shift.min():.3f}–{shift.max():.3f})")
    ok &= err < 1e-4 * max(1.0, np.abs(z_adj).max())

    classes = len(counts)
    confusion = np.zeros((classes, classes), int)
    for truth, predicted in zip(labels, z_adj.argmax(axis=1)):
        confusion[truth, predicted] += 1
    print(f"onnxruntime on the adjusted model: mean per-class accuracy {np.mean(np.diag(confusion) / confusion.sum(axis=1)):.4f}")
    for r in reports:
        with open(r) as f:
            got = np.array(json.load(f)["confusion"])
        same = got.shape == confusion.shape and (got == confusion).all()
        print(f"{r}: confusion matrix {'equal to' if same else 'DIFFERENT from'} onnxruntime's")
        ok &= bool(same)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
