"""kiln.train: a `kiln train` run from Python, with a callback per epoch."""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from ._native import KilnError
from ._program import Process, cli_options
from .metrics import read_records


class TrainingRun:
    """The result of `kiln.train`.

    Attributes:
        out: the run folder (checkpoint.kcp, metrics.jsonl, model.onnx).
        metrics: every finished epoch's record (metrics.jsonl), as dicts.
        model: the exported OUT/model.onnx, or None when the run was stopped before the end.
        stopped: True when the callback stopped the run (it resumes with ``resume=True``).
    """

    def __init__(self, out: str, metrics: List[Dict[str, Any]], model: Optional[str], stopped: bool) -> None:
        self.out, self.metrics, self.model, self.stopped = out, metrics, model, stopped

    def __repr__(self) -> str:
        return (f"TrainingRun(out={self.out!r}, epochs={len(self.metrics)}, model={self.model!r}, "
                f"stopped={self.stopped})")


def _new_records(path: str, after: int) -> List[Dict[str, Any]]:
    # Complete lines only: a line being written has no newline yet.
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return []
    records = []
    for line in text.split("\n")[:-1]:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("epoch"), int) and record["epoch"] > after:
            records.append(record)
    return records


def train(out: str, *, callback: Optional[Callable[[Dict[str, Any]], Any]] = None, resume: bool = False,
          force: bool = False, quiet: bool = False, poll_seconds: float = 0.25, **options: Any) -> TrainingRun:
    """Runs `kiln train --out OUT` with the CLI's settings given as keyword arguments, and
    returns the finished run (see TrainingRun).

    Every option of `kiln train --help` is a keyword: dashes become underscores, a flag takes
    True (``flip=False`` gives ``--no-flip``), a list option a tuple::

        run = kiln.train("runs/ldam", model="models/resnet8-mnist.kiln",
                         data="mnist-images-idx3-ubyte.gz", split_first=400,
                         lt_profile="exp", lt_ratio=100, loss="ldam", rule="drw",
                         epochs=20, crop_padding=2,
                         callback=lambda e: print(e["epoch"], e["val"]["meanClass"]))

    Args:
        out: the run folder.
        callback: called with each epoch's record (the metrics.jsonl line as a dict: epoch, lr,
            loss, trainAccuracy, val, …) as soon as the epoch ends. Returning False stops the
            run (as Ctrl-C does: the last checkpoint stays intact and ``resume=True``
            continues it). An exception in the callback stops the run and is raised.
        resume: continue the run in `out` from its last checkpoint (its stored settings).
        force: start over in an `out` that holds a run.
        quiet: do not print Kiln's per-epoch lines and notes (printed to sys.stdout and
            sys.stderr otherwise).
        poll_seconds: how often the metrics file is checked for a finished epoch.
        **options: the other `kiln train` options (model, data, val, recipe, epochs, batch,
            lr, loss, rule, seed, threads, …).

    Raises KilnError with Kiln's one-line message when the run fails (bad settings, a
    missing file, a killed process). Ctrl-C (KeyboardInterrupt) stops the run the same way.
    """
    out = os.fspath(out)
    args = ["train", "--out", out] + (["--resume"] if resume else []) + (["--force"] if force else []) + cli_options(options)
    metrics_path = os.path.join(out, "metrics.jsonl")
    # On resume, the epochs already recorded were reported by an earlier call.
    after = max([r["epoch"] for r in _new_records(metrics_path, 0)], default=0) if resume else 0

    def show(stream: Any) -> Optional[Callable[[str], None]]:
        return None if quiet else (lambda line: print(line, file=stream, flush=True))

    process = Process(args, on_stdout=show(sys.stdout), on_stderr=show(sys.stderr))
    stopped = False

    def deliver() -> bool:
        nonlocal after
        for record in _new_records(metrics_path, after):
            after = record["epoch"]
            if callback is not None and callback(record) is False:
                return False
        return True

    try:
        while process.popen.poll() is None:
            if callback is not None and not deliver():
                stopped = True
                process.interrupt()
                break
            time.sleep(poll_seconds)
        code = process.wait()
        if stopped and code == 0:
            stopped = False  # the run had finished before the callback's stop arrived
        if stopped:
            return TrainingRun(out, read_records(out), None, True)
        if code != 0:
            raise process.error(code)
        if callback is not None:
            deliver()
    except BaseException:
        process.interrupt()
        if process.popen.poll() is None:
            process.popen.wait()
        raise
    model = os.path.join(out, "model.onnx")
    return TrainingRun(out, read_records(out), model if os.path.exists(model) else None, False)
