"""The long-tail recipe search (issue 19): trains the demo's ResNet-8 on long-tailed MNIST with
each method, for each imbalance profile and seed, evaluates every exported model on the
balanced test folder with `kiln eval` (plain, and with post-hoc logit adjustment τ = 1), and
prints one table: balanced (mean per-class) top-1, many / medium / few-shot, mean ± std over
the seeds.

Usage:
  python scripts/lt_search.py [--kiln .build/release/kiln] [--out out/lt-search]
      [--methods ce,ldam-drw,...] [--profiles exp,step] [--seeds 0,1,2] [--epochs 100]
      [--threads N] [--list]

Runs already finished (their eval reports exist) are not run again; a run interrupted
mid-training continues from its checkpoint (`kiln train --resume`). The table is also written
to OUT/table.md. `--list` prints the methods and their `kiln train` flags.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMAGES = os.path.join(ROOT, "data/mnist5k/mnist5k-images-idx3-ubyte.gz")

# Each method: the `kiln train` flags beyond the demo's common ones, and the `kiln export`
# flags applied to its model before evaluation (classifier-level adjustments).
METHODS = {
    "ce": (["--loss", "ce"], []),
    "ldam-drw": (["--loss", "ldam", "--rule", "drw"], []),
    "la": (["--loss", "la"], []),
    "bs": (["--loss", "bs"], []),
    "vs": (["--loss", "vs"], []),
    "la-drw": (["--loss", "la", "--rule", "drw"], []),
    "ldam-drw-wd5e-4": (["--loss", "ldam", "--rule", "drw", "--wd", "5e-4"], []),
    "la-wd5e-4": (["--loss", "la", "--wd", "5e-4"], []),
    "la-ls0.1": (["--loss", "la", "--label-smoothing", "0.1"], []),
    "vs-drw": (["--loss", "vs", "--rule", "drw"], []),
    "ce-ra2m5": (["--loss", "ce", "--randaugment", "2,5"], []),
    "ldam-drw-ra2m5": (["--loss", "ldam", "--rule", "drw", "--randaugment", "2,5"], []),
    "la-ra2m5": (["--loss", "la", "--randaugment", "2,5"], []),
    "ldam-drw-ra1m3": (["--loss", "ldam", "--rule", "drw", "--randaugment", "1,3"], []),
    # The named recipe: ldam-drw-ra2m5 with logit adjustment τ = 1 folded into its export
    # (its "plain" row is `kiln eval` of that export).
    "lt": (["--recipe", "lt"], []),
    "lt-sam0.05": (["--recipe", "lt", "--sam", "0.05"], []),
    "lt-mixup0.2": (["--recipe", "lt", "--mixup", "0.2"], []),
    "lt-cutmix1": (["--recipe", "lt", "--cutmix", "1"], []),
}


def run(cmd, log=None):
    with (open(log, "a") if log else open(os.devnull, "w")) as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode not in (0, 2):
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}" + (f"; see {log}" if log else ""))


def test_folder(out, python):
    folder = os.path.join(out, "test-png")
    if not os.path.isdir(os.path.join(folder, "9")):
        run([python, os.path.join(HERE, "demo_check.py"), "pngs", IMAGES, "400", folder])
    return folder


def one(args, method, profile, seed, folder):
    train_flags, export_flags = METHODS[method]
    d = os.path.join(args.out, profile, method, f"seed{seed}")
    plain, adjusted = os.path.join(d, "eval.json"), os.path.join(d, "eval-la.json")
    if os.path.exists(plain) and os.path.exists(adjusted):
        return d
    os.makedirs(d, exist_ok=True)
    log = os.path.join(d, "train.log")
    if not os.path.exists(os.path.join(d, "model.onnx")):
        if os.path.exists(os.path.join(d, "checkpoint.kcp")):
            cmd = [args.kiln, "train", "--out", d, "--resume"]
        else:
            cmd = [args.kiln, "train", "--model", os.path.join(ROOT, "models/resnet8-mnist.kiln"), "--data", IMAGES,
                   "--split-first", "400", "--lt-profile", profile, "--lt-ratio", "100", "--epochs", str(args.epochs),
                   "--crop-padding", "2", "--seed", str(seed), "--out", d, "--force"] + train_flags
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        print(f"  training {profile} {method} seed {seed}", flush=True)
        run(cmd, log)
    model = os.path.join(d, "model.onnx")
    if export_flags:
        model = os.path.join(d, "model-adjusted.onnx")
        run([args.kiln, "export", d, "-o", model] + export_flags, log)
    run([args.kiln, "eval", model, folder, "--report", plain], log)
    run([args.kiln, "eval", model, folder, "--logit-adjust", "1", "--report", adjusted], log)
    return d


def summary(values):
    values = [100 * v for v in values if v is not None]
    if not values:
        return "   –      "
    sd = statistics.stdev(values) if len(values) > 1 else 0
    return f"{statistics.mean(values):5.1f} ±{sd:4.1f}"


def table(args, methods, profiles, seeds):
    lines = [f"ResNet-8, long-tailed MNIST (ratio 100, 400 → 4 per class), {args.epochs} epochs, seeds {','.join(map(str, seeds))};",
             "balanced test set (100 per class); mean ± std over seeds. '+LA': kiln eval --logit-adjust 1.", ""]
    header = "| profile | method | eval | balanced | many | medium | few |"
    lines += [header, "|---|---|---|---|---|---|---|"]
    for profile in profiles:
        for method in methods:
            for name, label in (("eval.json", "plain"), ("eval-la.json", "+LA")):
                reports = []
                for seed in seeds:
                    p = os.path.join(args.out, profile, method, f"seed{seed}", name)
                    if os.path.exists(p):
                        with open(p) as f:
                            reports.append(json.load(f))
                if not reports:
                    continue
                cells = [summary([r.get(k) for r in reports]) for k in ("meanClass", "many", "medium", "few")]
                n = "" if len(reports) == len(seeds) else f" ({len(reports)} seeds)"
                lines.append(f"| {profile} | {method}{n} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=os.path.join(ROOT, ".build/release/kiln"))
    ap.add_argument("--out", default=os.path.join(ROOT, "out/lt-search"))
    ap.add_argument("--methods", default="ce,ldam-drw,la,lt")
    ap.add_argument("--profiles", default="exp,step")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--python", default=os.path.join(os.environ.get("KILN_VENV", os.path.expanduser("~/.cache/kiln/venv")), "bin/python"))
    ap.add_argument("--table-only", action="store_true", help="print the table of the runs already done")
    ap.add_argument("--list", action="store_true", help="print the methods and their flags")
    args = ap.parse_args()
    if args.list:
        for name, (train_flags, export_flags) in METHODS.items():
            print(f"{name:18} kiln train {' '.join(train_flags)}" + (f"; kiln export {' '.join(export_flags)}" if export_flags else ""))
        return
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        sys.exit(f"unknown method(s) {', '.join(unknown)}; --list shows them")
    profiles, seeds = args.profiles.split(","), [int(s) for s in args.seeds.split(",")]
    if not args.table_only:
        folder = test_folder(args.out, args.python)
        for seed in seeds:
            for profile in profiles:
                for method in methods:
                    one(args, method, profile, seed, folder)
    text = table(args, methods, profiles, seeds)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
