"""The bf16 benchmark of issue 17: Kiln with --precision bf16 against OpenVINO at its default
precision (bf16 on CPUs with AVX-512 BF16 or AMX; its INFERENCE_PRECISION_HINT is printed),
on the zoo's f32 exports, at batch 1 and 16 on 2 threads, interleaved.

Usage: python bf16_bench.py KILN_BINARY OUT_DIR [--models resnet18,resnet50,mobilenet_v2,efficientnet_b0] [--rounds 3]
Run with the PyTorch venv (scripts/setup-torch.sh: torchvision, openvino). Figures are images/s
(batch / median run time), each engine's median over the rounds.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from zoo_bench import cpu_name, exported, kiln_throughput, timed  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kiln")
    p.add_argument("out")
    p.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,efficientnet_b0")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    import openvino as ov
    core = ov.Core()
    os.makedirs(a.out, exist_ok=True)
    print(f"CPU: {cpu_name()}; 2 threads; {a.rounds} rounds interleaved; images/s", flush=True)
    for name in a.models.split(","):
        path = exported(a.out, name)
        for batch in [1, 16]:
            x = np.random.default_rng(0).standard_normal((batch, 3, 224, 224)).astype(np.float32)
            m = core.read_model(path)
            m.reshape({m.inputs[0].get_any_name(): list(x.shape)})
            compiled = core.compile_model(m, "CPU", {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": "2"})
            precision = compiled.get_property("INFERENCE_PRECISION_HINT")
            request = compiled.create_infer_request()
            kiln, openvino = [], []
            for _ in range(a.rounds):
                time.sleep(0.2)
                kiln.append(kiln_throughput(a.kiln, path, batch, 1.0, batch / kiln[-1] if kiln else None, extra=("--precision", "bf16")))
                time.sleep(0.2)
                openvino.append(timed(lambda: request.infer({0: x}), batch, 1.0))
            k, o = statistics.median(kiln), statistics.median(openvino)
            print(f"{name:18} {batch:3} kiln bf16 {k:8.1f}  openvino ({precision}) {o:8.1f}  kiln/openvino {k / o:5.2f}", flush=True)
            del compiled, request


if __name__ == "__main__":
    main()
