"""Per-call overhead of kiln.InferenceSession.run against onnxruntime's Python API, and
batch-128 throughput from Python against `kiln bench` (issue 20's bars), in one run.

    KILN_LIBRARY=.build/release/libKilnC.so PYTHONPATH=python \
        ~/.cache/kiln/venv/bin/python bench/python_overhead.py [--calls 2000] [--rounds 5]

Overhead of a call = its wall time in Python − the time the native runtime spent on it:
Kiln's `session.last_run_seconds` (copy in, execute, copy out), onnxruntime's "model_run"
event from its own profiler. Measured on an almost empty model (one Relu on [N, 16]) and on
ResNet-32 (models/resnet32-cifar.kiln as ONNX, seeded weights) at batch 1, 2 threads, the
two runtimes alternating round by round. Medians over every call.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import kiln

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_name():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


def empty_model(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def kiln_round(session, feed, calls):
    walls, natives = [], []
    for _ in range(calls):
        t = time.perf_counter()
        session.run(None, feed)
        walls.append(time.perf_counter() - t)
        natives.append(session.last_run_seconds)
    return walls, natives


def ort_round(session, feed, calls):
    walls = []
    for _ in range(calls):
        t = time.perf_counter()
        session.run(None, feed)
        walls.append(time.perf_counter() - t)
    return walls


def ort_model_runs(profile):
    with open(profile) as f:
        events = json.load(f)
    return [e["dur"] / 1e6 for e in events if e.get("name") == "model_run"]


def overhead(model, shape, calls, rounds, scratch):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    k = kiln.InferenceSession(model, threads=2)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(scratch, "ort")
    o = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    kfeed, ofeed = {k.get_inputs()[0].name: x}, {o.get_inputs()[0].name: x}
    for _ in range(20):  # warm-up (compiles Kiln's program for the batch)
        k.run(None, kfeed)
        o.run(None, ofeed)
    kw, kn, ow = [], [], []
    for _ in range(rounds):
        w, n = kiln_round(k, kfeed, calls)
        kw += w
        kn += n
        ow += ort_round(o, ofeed, calls)
    on = ort_model_runs(o.end_profiling())[-len(ow):]
    assert len(on) == len(ow), "onnxruntime's profile lost model_run events"
    med = statistics.median
    return dict(kiln_wall=med(kw), kiln_native=med(kn), kiln_overhead=med([a - b for a, b in zip(kw, kn)]),
                ort_wall=med(ow), ort_native=med(on), ort_overhead=med([a - b for a, b in zip(ow, on)]))


def throughput(model, kiln_bin, rounds):
    x = np.random.default_rng(1).random((128, 3, 32, 32), dtype=np.float32)
    session = kiln.InferenceSession(model, threads=2)
    feed = {session.get_inputs()[0].name: x}
    for _ in range(3):
        session.run(None, feed)
    py, cli = [], []
    for _ in range(rounds):
        for _ in range(10):
            t = time.perf_counter()
            session.run(None, feed)
            py.append(128 / (time.perf_counter() - t))
        out = subprocess.run([kiln_bin, "bench", model, "--batch", "128", "--threads", "2", "--rounds", "1", "--runs", "10"],
                             check=True, capture_output=True, text=True).stdout
        cli.append(float(next(l for l in out.splitlines() if l.startswith("kiln ")).split()[1]))
    return statistics.median(py), statistics.median(cli)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per round (batch 1)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, Kiln and onnxruntime alternating")
    parser.add_argument("--kiln", default=os.environ.get("KILN_BIN", os.path.join(ROOT, ".build", "release", "kiln")))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        empty = os.path.join(scratch, "relu.onnx")
        empty_model(empty)
        r32 = os.path.join(scratch, "resnet32.onnx")
        subprocess.run([args.kiln, "convert", os.path.join(ROOT, "models", "resnet32-cifar.kiln"), "-o", r32, "--seed", "0"],
                       check=True, capture_output=True)
        print(f"{cpu_name()}, {os.cpu_count()} CPUs; 2 threads; onnxruntime {ort.__version__}; medians over "
              f"{args.rounds}×{args.calls} calls")
        print(f"{'model (batch 1)':<18}{'kiln µs':>10}{'native':>9}{'overhead':>10}{'ort µs':>10}{'native':>9}{'overhead':>10}"
              f"{'overhead ratio':>16}")
        for name, model, shape, calls in [("Relu [1, 16]", empty, (1, 16), args.calls),
                                          ("ResNet-32", r32, (1, 3, 32, 32), max(args.calls // 10, 50))]:
            r = overhead(model, shape, calls, args.rounds, scratch)
            us = {key: value * 1e6 for key, value in r.items()}
            print(f"{name:<18}{us['kiln_wall']:>10.1f}{us['kiln_native']:>9.1f}{us['kiln_overhead']:>10.1f}"
                  f"{us['ort_wall']:>10.1f}{us['ort_native']:>9.1f}{us['ort_overhead']:>10.1f}"
                  f"{r['kiln_overhead'] / r['ort_overhead']:>15.2f}×")
        py, cli = throughput(r32, args.kiln, args.rounds)
        print(f"ResNet-32 batch 128: kiln.InferenceSession {py:.0f} images/s, `kiln bench` {cli:.0f} images/s "
              f"(Python / CLI {py / cli:.3f})")


if __name__ == "__main__":
    sys.exit(main())
