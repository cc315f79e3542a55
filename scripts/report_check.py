"""Checks an HTML page written by `kiln report` (or `kiln eval --report FILE.html`): the data of
its plots against the runs' own files, and that headless Chromium renders it without errors.

Usage:
  python report_check.py runs PAGE.html RUN_DIR [RUN_DIR ...]
      Every run's accuracy and loss series equal its metrics.jsonl (trainAccuracy, val.top1,
      val.meanClass, val.many/medium/few, loss; one point per finite value), its scatter the
      last epoch's per-class accuracy against the class counts in RUN_DIR/model.onnx's
      metadata, its heat map the last epoch's val.confusion.
  python report_check.py eval PAGE.html REPORT.json
      The scatter and heat map equal the JSON report's perClass / trainingCounts / confusion.
  Both then render PAGE.html in headless Chromium (CHROMIUM, default `chromium`): a PNG
  screenshot next to the page (PAGE.png), the page's own check (every chart has a size) in
  the rendered DOM, and no JavaScript error on the console. Exit code 1 when a check fails.
"""
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser

import onnx


class Charts(HTMLParser):
    """Collects the plotted elements, keyed by the run section they are in."""

    def __init__(self):
        super().__init__()
        self.run = None
        self.series = {}      # key -> (values, number of points)
        self.scatter = {}     # run -> [(count, accuracy)]
        self.cells = {}       # run -> [count]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "data-run" in a:
            self.run = a["data-run"]
        elif tag == "polyline" and "data-series" in a:
            values = [None if v == "null" else float(v) for v in a["data-values"].split(",")]
            points = len(a["points"].split()) if a["points"].strip() else 0
            self.series[a["data-series"]] = (values, points)
        elif tag == "circle" and "data-count" in a:
            self.scatter.setdefault(self.run, []).append((int(a["data-count"]), float(a["data-accuracy"])))
        elif tag == "rect" and "data-count" in a:
            self.cells.setdefault(self.run, []).append(int(a["data-count"]))


def fail(message):
    print("FAIL: " + message)
    return False


def check_series(charts, key, expected):
    if key not in charts.series:
        return fail(f"no series {key}")
    values, points = charts.series[key]
    if values != expected:
        return fail(f"{key}: plotted {values[:5]}… differ from the run's {expected[:5]}…")
    finite = sum(1 for v in expected if v is not None)
    if points != finite:
        return fail(f"{key}: {points} points for {finite} values")
    return True


def check_runs(page, runs):
    charts = Charts()
    with open(page, encoding="utf-8") as f:
        charts.feed(f.read())
    ok = True
    for run in runs:
        name = run.rstrip("/")
        with open(os.path.join(run, "metrics.jsonl")) as f:
            epochs = [json.loads(line) for line in f if line.strip()]
        val = lambda e, k: (e.get("val") or {}).get(k)
        ok &= check_series(charts, f"{name}:trainAccuracy", [e["trainAccuracy"] for e in epochs])
        ok &= check_series(charts, f"{name}:loss", [e["loss"] for e in epochs])
        for k in ("top1", "meanClass", "many", "medium", "few"):
            ok &= check_series(charts, f"{name}:val.{k}", [val(e, k) for e in epochs])
        meta = {p.key: p.value for p in onnx.load(os.path.join(run, "model.onnx")).metadata_props}
        counts = json.loads(meta["kiln.class_counts"])
        last = epochs[-1]["val"]
        expected = [(c, a) for c, a in zip(counts, last["perClass"]) if a is not None]
        if charts.scatter.get(name) != expected:
            ok &= fail(f"{name}: scatter {charts.scatter.get(name)} differs from {expected}")
        cells = [n for row in last["confusion"] for n in row]
        if charts.cells.get(name) != cells:
            ok &= fail(f"{name}: heat map differs from val.confusion")
        print(f"{name}: {len(epochs)} epochs, 7 series, {len(expected)} classes and the confusion matrix as in its files")
    return ok


def check_eval(page, report):
    charts = Charts()
    with open(page, encoding="utf-8") as f:
        charts.feed(f.read())
    with open(report) as f:
        r = json.load(f)
    ok = True
    expected = [(c, a) for c, a in zip(r["trainingCounts"], r["perClass"]) if a is not None]
    if charts.scatter.get(None) != expected:
        ok &= fail(f"scatter {charts.scatter.get(None)} differs from {expected}")
    if charts.cells.get(None) != [n for row in r["confusion"] for n in row]:
        ok &= fail("heat map differs from the report's confusion matrix")
    print(f"{len(expected)} classes and the confusion matrix as in {report}")
    return ok


def render(page):
    chromium = os.environ.get("CHROMIUM", "chromium")
    url = "file://" + os.path.abspath(page)
    shot = os.path.splitext(page)[0] + ".png"
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    a = subprocess.run(common + ["--window-size=1400,2000", f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    b = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    ok = True
    with open(shot, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            ok &= fail("the screenshot is not a PNG")
    rendered = re.search(r'data-rendered="([^"]*)"', b.stdout)
    charts = len(re.findall(r"<svg", b.stdout))
    if not rendered or rendered.group(1) != str(charts) or charts == 0:
        ok &= fail(f"the page's own check says {rendered.group(1) if rendered else 'nothing'} for {charts} charts")
    errors = [line for line in (a.stderr + b.stderr).splitlines() if "CONSOLE" in line or "Uncaught" in line]
    if errors:
        ok &= fail("console messages: " + " | ".join(errors[:5]))
    print(f"rendered in headless Chromium: {charts} charts, screenshot {shot} ({os.path.getsize(shot)} bytes), {len(errors)} console errors")
    return ok


def main():
    mode, page = sys.argv[1], sys.argv[2]
    ok = check_runs(page, sys.argv[3:]) if mode == "runs" else check_eval(page, sys.argv[3])
    ok &= render(page)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
