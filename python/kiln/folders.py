"""kiln.infer_folder: classify every image under a folder."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Tuple

from ._native import KilnError
from ._program import Process, cli_options


class FolderRows(list):
    """The rows of `infer_folder`, one per classified image in the folder's sorted order:
    ``{"path": str, "top": [{"label": str, "index": int, "probability": float}, …]}``
    (highest probability first). `skipped` lists the files that could not be used, as
    (path, reason) pairs."""

    skipped: List[Tuple[str, str]]

    def __init__(self, rows: List[Dict[str, Any]], skipped: List[Tuple[str, str]]) -> None:
        super().__init__(rows)
        self.skipped = skipped


def _split_skip(line: str) -> Tuple[str, str]:
    # "PATH: REASON": the path is the shortest prefix before a ": " that names a file.
    k = line.find(": ")
    while k >= 0:
        if os.path.lexists(line[:k]):
            return line[:k], line[k + 2:]
        k = line.find(": ", k + 1)
    first = line.find(": ")
    return (line, "") if first < 0 else (line[:first], line[first + 2:])


def infer_folder(model: str, folder: str, top_k: int = 5, *, batch: int = 128, threads: Optional[int] = None,
                 **preprocess: Any) -> FolderRows:
    """Classifies every PNG and JPEG under `folder` (recursively, sorted; hidden entries
    skipped) with `model`, as `kiln infer` does, and returns the rows (see FolderRows).

    Args:
        model: an .onnx (or .kiln) classifier whose first output is class scores [N, C].
        folder: the folder of images.
        top_k: classes per image, with probabilities (the softmax of the scores).
        batch: images per run; decoding of the next batch overlaps the current one's run.
        threads: threads (None: every core).
        **preprocess: `kiln infer`'s preprocessing overrides, e.g. ``size="224x224",
            resize="shorter-side", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)``.
            By default the preprocessing comes from the model's metadata (`kiln export` writes
            it); a model without it is resized directly with pixels in [0, 1] (a warning says so).

    Files that cannot be used (empty, truncated, not an image, …) are skipped: listed in the
    result's `skipped`, with one warning naming how many. Raises KilnError when the run fails
    (a bad model, a missing folder): Kiln's one-line message.
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise KilnError(f"top_k must be a whole number ≥ 1, got {top_k!r}")
    with tempfile.TemporaryDirectory(prefix="kiln-infer-") as scratch:
        output = os.path.join(scratch, "rows.jsonl")
        errors = os.path.join(scratch, "skipped.txt")
        args = ["infer", os.fspath(model), os.fspath(folder), "--top-k", str(top_k), "--batch", str(batch),
                "--output", output, "--errors", errors] + cli_options(dict(threads=threads, **preprocess))

        process = Process(args)
        code = process.wait()
        if code not in (0, 2):
            raise process.error(code)
        for line in process.stderr_lines:
            if line.startswith("kiln: note: "):
                warnings.warn(line[len("kiln: "):], stacklevel=2)
        with open(output, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        skipped: List[Tuple[str, str]] = []
        if os.path.exists(errors):
            with open(errors, encoding="utf-8", errors="replace") as f:
                skipped = [_split_skip(line.rstrip("\n")) for line in f if line.strip()]
    if skipped:
        warnings.warn(f"{len(skipped)} file{'s' if len(skipped) != 1 else ''} under {folder} could not be used "
                      "(see the result's .skipped)", stacklevel=2)
    return FolderRows(rows, skipped)
