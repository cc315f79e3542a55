"""The zoo benchmark: Kiln, onnxruntime and OpenVINO (f32) on the CNNs of the zoo check, at
batch 1 and 16 on 2 threads, interleaved, on the same ONNX files (the zoo's classic exporter
with a dynamic batch, random weights).

Usage: python zoo_bench.py KILN_BINARY OUT_DIR [--models a,b] [--batches 1,16] [--rounds 3] [--seconds 1.0]
Run by scripts/zoo-bench.sh with the PyTorch venv (onnxruntime and openvino in it). Each round
runs Kiln (`kiln bench`, one round, in a subprocess), then onnxruntime, then OpenVINO, each for
about SECONDS of timed runs after a warm-up; a round's figure is batch / median run time, and
the table gives each engine's median over the rounds, Kiln / max(onnxruntime, OpenVINO) per
model, and the geometric mean and minimum of that ratio per batch. The CPU (lscpu's model name)
heads the output.
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import zoo  # noqa: E402  (the model lists and the exporter of the zoo check)

# The zoo's models with attention layers: the CNN geometric mean leaves them out.
ATTENTION = {"maxvit_t", "swin_t", "swin_v2_t", "vit_b_16", "vit_tiny_patch16_224", "deit_tiny_patch16_224", "levit_128s",
             "mobilevit_xxs", "efficientformer_l1", "coat_lite_tiny"}
CNNS = [m for m in zoo.TORCHVISION + zoo.TIMM if m not in ATTENTION]
THREADS = 2


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return f"{fields.get('Model name', '?').strip()} (family {fields.get('CPU family', '?').strip()}, model {fields.get('Model', '?').strip()})"
    except OSError:
        return "unknown CPU"


def timed(run, batch, seconds):
    """batch / median seconds of `run` over about `seconds` of runs, after one warm-up run."""
    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    times = []
    for _ in range(max(3, min(200, int(seconds / max(first, 1e-4))))):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times)


def ort_engine(path, x):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feeds)


def openvino_engine(path, x):
    import openvino as ov
    core = ov.Core()
    model = core.read_model(path)
    model.reshape({model.inputs[0].get_any_name(): list(x.shape)})
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
                                                 "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(THREADS)})
    request = compiled.create_infer_request()
    return lambda: request.infer({0: x})


def exported(out, name):
    """The zoo's export of `name` in `out` (classic exporter, dynamic batch), made on first use."""
    path = os.path.join(out, f"{name}-classic-dynamic.onnx")
    if not os.path.exists(path):
        model, size = zoo.build(name)
        zoo.export(model, size, "classic-dynamic", path)
    return path


def kiln_throughput(kiln, path, batch, seconds, first, extra=()):
    runs = max(3, min(200, int(seconds / first))) if first else 5
    r = subprocess.run([kiln, "bench", path, "--batch", str(batch), "--threads", str(THREADS), "--rounds", "1", "--runs", str(runs),
                        "--warmup", "1", *extra], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("kiln "):
            return float(line.split()[1])
    raise RuntimeError((r.stderr.strip().splitlines() or ["kiln bench failed"])[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kiln")
    p.add_argument("out")
    p.add_argument("--models", default=",".join(CNNS))
    p.add_argument("--batches", default="1,16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0, help="timed runs per engine and round")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    batches = [int(b) for b in a.batches.split(",")]
    print(f"CPU: {cpu_name()}; {THREADS} threads; {a.rounds} rounds interleaved; images/s (batch / median run time)", flush=True)
    header = f"{'model':24} {'batch':>5} {'kiln':>9} {'ort':>9} {'openvino':>9} {'kiln/best':>9}"
    print(header, flush=True)
    ratios = {b: [] for b in batches}
    rows = []
    for name in a.models.split(","):
        try:
            path = exported(a.out, name)
        except Exception as e:  # the exporter's failure: listed, left out of the means
            print(f"{name:24} not exportable: {type(e).__name__}", flush=True)
            continue
        import onnx
        dims = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        size = dims[2].dim_value or 224
        for batch in batches:
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
            try:
                engines = {"ort": ort_engine(path, x), "openvino": openvino_engine(path, x)}
            except Exception as e:
                print(f"{name:24} {batch:5} an anchor failed: {type(e).__name__}: {str(e).splitlines()[0][:100]}", flush=True)
                continue
            got = {"kiln": [], "ort": [], "openvino": []}
            first = None
            try:
                for _ in range(a.rounds):
                    time.sleep(0.2)  # the anchors' threads stop spinning
                    got["kiln"].append(kiln_throughput(a.kiln, path, batch, a.seconds, first))
                    first = batch / got["kiln"][-1]
                    for engine, run in engines.items():
                        time.sleep(0.2)  # the previous engine's threads stop spinning
                        got[engine].append(timed(run, batch, a.seconds))
            except RuntimeError as e:
                print(f"{name:24} {batch:5} kiln failed: {e}", flush=True)
                continue
            med = {k: statistics.median(v) for k, v in got.items()}
            ratio = med["kiln"] / max(med["ort"], med["openvino"])
            ratios[batch].append(ratio)
            rows.append((name, batch, med, ratio))
            print(f"{name:24} {batch:5} {med['kiln']:9.1f} {med['ort']:9.1f} {med['openvino']:9.1f} {ratio:9.2f}", flush=True)
            del engines
    for b in batches:
        if ratios[b]:
            geo = math.exp(sum(math.log(r) for r in ratios[b]) / len(ratios[b]))
            worst = min(rows, key=lambda r: r[3] if r[1] == b else math.inf)
            print(f"batch {b}: geometric mean of kiln/best {geo:.2f} over {len(ratios[b])} models; lowest {worst[3]:.2f} ({worst[0]})")


if __name__ == "__main__":
    main()
