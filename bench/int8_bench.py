"""The int8 benchmark of issue 17: per model, Kiln on the f32 model, Kiln on the int8 QDQ model
and onnxruntime on the same QDQ model, at the given batches on 2 threads, interleaved.

Usage: python int8_bench.py KILN_BINARY OUT_DIR [--models resnet18,resnet50,mobilenet_v2,efficientnet_b0]
                            [--batches 1,16] [--rounds 3] [--seconds 1.0]
Run with the PyTorch venv (scripts/setup-torch.sh: torchvision, onnxruntime). The f32 model is
the zoo check's export (classic exporter, dynamic batch, seeded random weights with BatchNorm
calibrated); the QDQ model is onnxruntime's quantize_static of it (weights int8 per output
channel, activations uint8 per tensor, min/max over 8 batches of 4 seeded normal inputs).
Figures are images/s (batch / median run time), each engine's median over the rounds; the
CPU heads the output.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from zoo_bench import cpu_name, exported, kiln_throughput, ort_engine, timed  # noqa: E402


def quiet_onnxruntime():
    import onnxruntime
    onnxruntime.set_default_logger_severity(3)  # its warnings about unused initializers flood the table
    import logging
    logging.getLogger().setLevel(logging.ERROR)  # and the quantizer's advice to pre-process


def quantized(path, out):
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    if os.path.exists(out):
        return out
    model = onnx.load(path, load_external_data=False)
    name = model.graph.input[0].name
    size = model.graph.input[0].type.tensor_type.shape.dim[2].dim_value or 224
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{name: rng.standard_normal((4, 3, size, size)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(path, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kiln")
    p.add_argument("out")
    p.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,efficientnet_b0")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    quiet_onnxruntime()
    print(f"CPU: {cpu_name()}; 2 threads; {a.rounds} rounds interleaved; images/s", flush=True)
    print(f"{'model':18} {'batch':>5} {'kiln f32':>9} {'kiln int8':>9} {'ort int8':>9} {'int8/f32':>9} {'int8/ort':>9}", flush=True)
    for name in a.models.split(","):
        path = exported(a.out, name)
        qpath = quantized(path, os.path.join(a.out, f"{name}-int8-ort.onnx"))
        import onnx
        size = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[2].dim_value or 224
        for batch in [int(b) for b in a.batches.split(",")]:
            x = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
            ort = ort_engine(qpath, x)
            got = {"f32": [], "int8": [], "ort": []}
            first = {"f32": None, "int8": None}
            for _ in range(a.rounds):
                for key, model_path in [("f32", path), ("int8", qpath)]:
                    time.sleep(0.2)  # onnxruntime's threads stop spinning
                    got[key].append(kiln_throughput(a.kiln, model_path, batch, a.seconds, first[key]))
                    first[key] = batch / got[key][-1]
                time.sleep(0.2)
                got["ort"].append(timed(ort, batch, a.seconds))
            med = {k: statistics.median(v) for k, v in got.items()}
            print(f"{name:18} {batch:5} {med['f32']:9.1f} {med['int8']:9.1f} {med['ort']:9.1f} {med['int8'] / med['f32']:9.2f} "
                  f"{med['int8'] / med['ort']:9.2f}", flush=True)
            del ort


if __name__ == "__main__":
    main()
