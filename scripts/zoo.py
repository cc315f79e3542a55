"""The model zoo check: image classifiers from torchvision and timm, exported with random
weights, run through `kiln run` (compiled) and onnxruntime on the same seeded input.

Usage: python zoo.py KILN_BINARY OUT_DIR [--models a,b,...] [--exporters classic-static,classic-dynamic,dynamo] [--no-timing] [--reuse-exports]
Run by scripts/zoo.sh with the PyTorch venv (scripts/setup-zoo.sh). For each model and exporter
it prints one line: the worst relative error max|kiln − ort| / max|ort| over batches 1 and 4,
whether top-1 agrees, the compiled program's steps left on reference kernels (and their ops),
and onnxruntime's and Kiln's time per image; then "N passed, M failed". A model an exporter
cannot write is listed with the exporter's error and counted apart.
"""
import argparse
import os
import subprocess
import sys
import time
import traceback

import numpy as np

TORCHVISION = ["alexnet", "convnext_tiny", "densenet121", "efficientnet_b0", "efficientnet_v2_s", "googlenet", "inception_v3",
               "maxvit_t", "mnasnet0_5", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "regnet_x_400mf",
               "regnet_y_400mf", "resnet18", "resnet50", "resnext50_32x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
               "squeezenet1_0", "squeezenet1_1", "swin_t", "swin_v2_t", "vgg11", "vgg11_bn", "vit_b_16", "wide_resnet50_2"]
TIMM = ["resnet18d", "resnet50d", "cspresnet50", "efficientnet_lite0", "mobilenetv3_large_100", "mobilenetv4_conv_small",
        "ghostnet_100", "repvgg_a0", "rexnet_100", "dla34", "regnety_002", "convnext_atto", "vit_tiny_patch16_224",
        "deit_tiny_patch16_224", "levit_128s", "mobilevit_xxs", "efficientformer_l1", "poolformer_s12", "coat_lite_tiny"]
EXPORTERS = ["classic-static", "classic-dynamic", "dynamo"]
TOLERANCE = 1e-4


def build(name):
    """The model with seeded random weights and BatchNorm statistics calibrated on random
    inputs (so that outputs depend on the input), and its input size."""
    import torch
    torch.manual_seed(0)
    if name in TORCHVISION:
        import torchvision
        kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
        model = getattr(torchvision.models, name)(weights=None, **kwargs)
        size = 299 if name == "inception_v3" else 224
    else:
        import timm
        model = timm.create_model(name, pretrained=False)
        size = model.default_cfg.get("input_size", (3, 224, 224))[1]
    with torch.no_grad():
        # Weights a builder initialises to zero (torchvision ViT's head) would make every
        # output equal the bias: give them small random values so the check compares logits.
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                p.normal_(0, 0.02)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for k in range(4):
            model(torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(100 + k)))
    return model.eval(), size


def export(model, size, exporter, path):
    import torch
    x = torch.randn(1, 3, size, size)
    if exporter == "dynamo":
        torch.onnx.export(model, (x,), path, dynamo=True, opset_version=18, input_names=["x"], output_names=["y"],
                          dynamic_shapes={"x": {0: torch.export.Dim("N", min=1, max=64)}})
    else:
        dynamic = {"x": {0: "N"}, "y": {0: "N"}} if exporter == "classic-dynamic" else None
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=17, input_names=["x"], output_names=["y"],
                          dynamic_axes=dynamic)


def ort_run(path, x, static, timing=True):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    def once():
        if static:  # a batch-1 model, one image at a time
            return np.concatenate([session.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
        return session.run(None, {name: x})[0]
    y = once()
    if not timing:
        return y, float("nan"), name
    t = time.perf_counter()
    for _ in range(3):
        once()
    return y, (time.perf_counter() - t) / 3 / len(x), name


def kiln_run(kiln, path, name, x, out):
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "x.npy"), x)
    r = subprocess.run([kiln, "run", path, "--input", f"{name}={out}/x.npy", "--output", out], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError((r.stderr.strip().splitlines() or ["kiln run failed"])[-1])
    outputs = [f for f in os.listdir(out) if f.endswith(".npy") and f != "x.npy"]
    return np.load(os.path.join(out, outputs[0]))


def kiln_time(kiln, path, batch):
    r = subprocess.run([kiln, "bench", path, "--batch", str(batch), "--rounds", "2", "--runs", "3", "--warmup", "1"],
                       capture_output=True, text=True)
    for line in r.stdout.splitlines():
        if line.startswith("kiln "):
            return 1 / float(line.split()[1])
    return float("nan")


def reference_steps(kiln, path, batch):
    r = subprocess.run([kiln, "dump", path, "--program", "--batch", str(batch)], capture_output=True, text=True)
    ops = [line.split()[2] for line in r.stdout.splitlines() if ": reference " in line]
    return len(ops), sorted(set(ops))


def check(kiln, name, exporter, out, timing=True, reuse=False):
    model, size = build(name)
    path = os.path.join(out, f"{name}-{exporter}.onnx")
    try:
        if not (reuse and os.path.exists(path)):
            export(model, size, exporter, path)
    except Exception as e:  # the exporter's own failure: listed, not counted against Kiln
        return "export", f"{type(e).__name__}: {str(e).strip().splitlines()[0][:160] if str(e).strip() else ''}"
    # A batch the exporter fixed (classic-static; dynamo when torch.export specialises the
    # dynamic dimension to 1): onnxruntime runs the images one at a time, Kiln batches them.
    import onnx
    first = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    static = exporter == "classic-static" or first.HasField("dim_value")
    worst, top1, times = 0.0, True, []
    for batch in (1, 4):
        x = np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)
        want, ort_t, input_name = ort_run(path, x, static, timing)
        got = kiln_run(kiln, path, input_name, x, os.path.join(out, f"{name}-{exporter}-b{batch}"))
        worst = max(worst, float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)))
        top1 = top1 and bool(np.all(got.argmax(-1) == want.argmax(-1)))
        times.append((ort_t, kiln_time(kiln, path, batch) if timing else float("nan")))
    count, ops = reference_steps(kiln, path, 1)
    ok = worst <= TOLERANCE and top1 and count == 0
    line = (f"rel {worst:.1e}  top-1 {'same' if top1 else 'DIFFERS'}  reference steps {count}{' (' + ', '.join(ops) + ')' if ops else ''}  "
            f"ms/image ort {times[0][0] * 1e3:.2f}/{times[1][0] * 1e3:.2f} kiln {times[0][1] * 1e3:.2f}/{times[1][1] * 1e3:.2f} (batch 1/4)")
    return ("pass" if ok else "fail"), line


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kiln")
    p.add_argument("out")
    p.add_argument("--models", default=",".join(TORCHVISION + TIMM))
    p.add_argument("--exporters", default=",".join(EXPORTERS))
    p.add_argument("--no-timing", action="store_true", help="check outputs only; skip the time per image")
    p.add_argument("--reuse-exports", action="store_true", help="keep ONNX files an earlier run wrote to OUT_DIR")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    counts = {"pass": 0, "fail": 0, "export": 0}
    for name in a.models.split(","):
        for exporter in a.exporters.split(","):
            try:
                status, line = check(a.kiln, name, exporter, a.out, not a.no_timing, a.reuse_exports)
            except Exception as e:
                status, line = "fail", f"{type(e).__name__}: {str(e).strip()[:300]}"
                if os.environ.get("ZOO_TRACE"):
                    traceback.print_exc()
            counts[status] += 1
            label = {"pass": "PASS", "fail": "FAIL", "export": "NOT EXPORTED"}[status]
            print(f"{label:12s} {name:24s} {exporter:16s} {line}", flush=True)
    print(f"{counts['pass']} passed, {counts['fail']} failed ({counts['export']} not exported by the exporter)")
    return 1 if counts["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
