"""kiln.read_metrics: a training run's epochs."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from ._native import KilnError


def read_records(run_dir: str) -> List[Dict[str, Any]]:
    """RUN_DIR/metrics.jsonl as a list of dicts, one per finished epoch."""
    path = os.path.join(os.fspath(run_dir), "metrics.jsonl")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise KilnError(f"{path}: cannot read the run's metrics: {e.strerror}") from None
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            raise KilnError(f"{path}, line {number}: not an epoch record") from None
    return rows


def read_metrics(run_dir: str) -> Any:
    """The epochs of a `kiln train` run (RUN_DIR/metrics.jsonl): a list of dicts, one per
    finished epoch (keys in docs/TRAINING.md: epoch, lr, loss, trainAccuracy, val: {top1,
    meanClass, perClass, many, medium, few, …}); a pandas DataFrame with the nested keys
    flattened (val.top1, …) when pandas is installed. A line that is not JSON raises KilnError
    naming it."""
    rows = read_records(run_dir)
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.json_normalize(rows, sep=".")
