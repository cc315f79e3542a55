"""Prints runs of `kiln train` side by side from their metrics.jsonl and checkpoints' settings.

Usage: python demo_table.py NAME=RUN_DIR [NAME=RUN_DIR ...]   (each RUN_DIR holds model.onnx)
Rows: validation top-1 at the final and the best epoch, mean per-class accuracy,
many/medium/few-shot accuracy (> 100, 20-100, < 20 training images) and every class's
accuracy with its training count, all at the final epoch.
"""
import json
import sys

import onnx


def load(run_dir):
    with open(run_dir + "/metrics.jsonl") as f:
        reports = [json.loads(line) for line in f if line.strip()]
    return reports


def pct(v):
    return "   –  " if v is None else f"{100 * v:5.1f} "


def main():
    runs = [(spec.split("=", 1)[0], load(spec.split("=", 1)[1])) for spec in sys.argv[1:]]
    for _, reports in runs:
        if not reports or reports[-1].get("val") is None:
            sys.exit("a run has no validation results")
    # Class names and training counts from the first run's exported model.
    meta = {p.key: p.value for p in onnx.load(sys.argv[1].split("=", 1)[1] + "/model.onnx").metadata_props}
    names = json.loads(meta["kiln.class_names"])
    counts = json.loads(meta["kiln.class_counts"])
    width = max(len(name) for name, _ in runs)
    head = " " * 26 + "  ".join(f"{name:>{max(width, 8)}}" for name, _ in runs)
    print(head)

    def row(label, values):
        print(f"{label:26s}" + "  ".join(f"{v:>{max(width, 8)}}" for v in values))

    finals = [r[-1] for _, r in runs]
    row("top-1, final epoch", [pct(f["val"]["top1"]).strip() + "%" for f in finals])
    bests = [max(r, key=lambda x: x["val"]["top1"]) for _, r in runs]
    row("top-1, best epoch", [f'{100 * b["val"]["top1"]:.1f}% @{b["epoch"]}' for b in bests])
    row("mean per-class, final", [pct(f["val"]["meanClass"]).strip() + "%" for f in finals])
    for group, label in (("many", "many-shot (>100)"), ("medium", "medium-shot (20-100)"), ("few", "few-shot (<20)")):
        row(label, [pct(f["val"].get(group)).strip() + "%" for f in finals])
    classes = len(finals[0]["val"]["perClass"])
    for c in range(classes):
        label = f"class {names[c]} ({counts[c]} train)"
        row(label, [pct(f["val"]["perClass"][c]).strip() + "%" for f in finals])


if __name__ == "__main__":
    main()
