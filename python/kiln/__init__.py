"""Kiln from Python: an onnxruntime-style inference session over Kiln's C ABI (libKilnC.so).

    import kiln
    session = kiln.InferenceSession("model.onnx")
    logits, = session.run(None, {session.get_inputs()[0].name: images})

The shared library is found through KILN_LIBRARY (its path), or in the repository's release
build (`swift build -c release --product KilnC` writes .build/release/libKilnC.so). This is a
first step of issue 20: f32 inputs and outputs, any batch size, runs on one session
serialised (thread-safe). Errors raise kiln.KilnError with Kiln's one-line message.
"""
import ctypes
import os
import threading

import numpy as np

__all__ = ["InferenceSession", "NodeArg", "KilnError", "library_path", "read_metrics"]


class KilnError(RuntimeError):
    """An error Kiln reported (its one-line message)."""


def library_path():
    """The libKilnC.so this package loads: KILN_LIBRARY, or the repository's release build."""
    given = os.environ.get("KILN_LIBRARY")
    if given:
        return given
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(root, ".build", "release", "libKilnC.so")


_lib = None
_lib_lock = threading.Lock()


def _library():
    global _lib
    with _lib_lock:
        if _lib is None:
            path = library_path()
            if not os.path.exists(path):
                raise KilnError(f"{path}: no Kiln library; build it with `swift build -c release --product KilnC` or set KILN_LIBRARY")
            lib = ctypes.CDLL(path)
            lib.kiln_session_open.restype = ctypes.c_void_p
            lib.kiln_session_open.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32]
            lib.kiln_session_close.argtypes = [ctypes.c_void_p]
            lib.kiln_session_count.restype = ctypes.c_int32
            lib.kiln_session_count.argtypes = [ctypes.c_void_p, ctypes.c_int32]
            lib.kiln_session_describe.restype = ctypes.c_int32
            lib.kiln_session_describe.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32,
                                                  ctypes.POINTER(ctypes.c_int64), ctypes.c_int32]
            lib.kiln_session_run.restype = ctypes.c_int32
            lib.kiln_session_run.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p),
                                             ctypes.POINTER(ctypes.c_int64), ctypes.c_char_p, ctypes.c_int32]
            _lib = lib
        return _lib


class NodeArg:
    """An input or output as onnxruntime describes it: name, shape (the batch as "N"), type."""

    def __init__(self, name, shape, type):
        self.name, self.shape, self.type = name, shape, type

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, shape={self.shape!r}, type={self.type!r})"


class InferenceSession:
    """A compiled model, run like onnxruntime's InferenceSession.

    InferenceSession(path, threads=None): path is an .onnx file (or Kiln's .kiln text IR with
    weights); threads None uses every core. Each batch size is compiled on its first run.
    """

    def __init__(self, path, threads=None, providers=None, sess_options=None):
        lib = _library()
        message = ctypes.create_string_buffer(1024)
        handle = lib.kiln_session_open(os.fsencode(path), int(threads or 0), message, len(message))
        if not handle:
            raise KilnError(message.value.decode("utf-8", "replace"))
        self._lib, self._handle = lib, handle
        self._inputs = [self._describe(0, i) for i in range(lib.kiln_session_count(handle, 0))]
        self._outputs = [self._describe(1, i) for i in range(lib.kiln_session_count(handle, 1))]

    def _describe(self, outputs, index):
        name = ctypes.create_string_buffer(512)
        dims = (ctypes.c_int64 * 16)()
        rank = self._lib.kiln_session_describe(self._handle, outputs, index, name, len(name), dims, 16)
        if rank < 0:
            raise KilnError(f"cannot describe {'output' if outputs else 'input'} {index}")
        shape = [("N" if d < 0 else int(d)) for d in dims[:rank]]
        return NodeArg(name.value.decode(), shape, "tensor(float)")

    def get_inputs(self):
        return list(self._inputs)

    def get_outputs(self):
        return list(self._outputs)

    def run(self, output_names, input_feed, run_options=None):
        """Outputs `output_names` (None: all) for `input_feed` {name: array}, as numpy arrays."""
        names = [o.name for o in self._outputs]
        wanted = names if output_names is None else list(output_names)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise KilnError(f"unknown output name(s) {', '.join(unknown)}; the model's outputs are {', '.join(names)}")
        missing = [i.name for i in self._inputs if i.name not in input_feed]
        if missing:
            raise KilnError(f"missing input(s) {', '.join(missing)}")
        arrays, batch = [], None
        for arg in self._inputs:
            value = input_feed[arg.name]
            if not isinstance(value, np.ndarray) or value.dtype != np.float32:
                raise KilnError(f"input {arg.name}: expected a numpy float32 array, got {getattr(value, 'dtype', type(value).__name__)}")
            if value.ndim != len(arg.shape) or any(s != "N" and s != d for s, d in zip(arg.shape, value.shape)):
                raise KilnError(f"input {arg.name}: expected shape {arg.shape}, got {list(value.shape)}")
            n = value.shape[0] if arg.shape and arg.shape[0] == "N" else 1
            if batch is not None and n != batch:
                raise KilnError(f"inputs disagree on the batch: {batch} and {n}")
            batch = n
            arrays.append(np.ascontiguousarray(value))
        batch = batch or 1
        if batch < 1:
            raise KilnError("the batch must hold at least one image")
        outs = [np.empty([batch if s == "N" else s for s in o.shape], np.float32) for o in self._outputs]
        in_ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        out_ptrs = (ctypes.c_void_p * len(outs))(*[o.ctypes.data for o in outs])
        counts = (ctypes.c_int64 * len(outs))(*[o.size for o in outs])
        message = ctypes.create_string_buffer(1024)
        # ctypes releases the GIL for the call.
        if self._lib.kiln_session_run(self._handle, batch, in_ptrs, out_ptrs, counts, message, len(message)) != 0:
            raise KilnError(message.value.decode("utf-8", "replace"))
        return [outs[names.index(n)] for n in wanted]

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle:
            self._lib.kiln_session_close(handle)
            self._handle = None


def read_metrics(run_dir):
    """The epochs of a `kiln train` run (RUN_DIR/metrics.jsonl) as a list of dicts, one per
    finished epoch (keys in docs/TRAINING.md); a pandas DataFrame with the validation keys
    flattened (val.top1, …) when pandas is installed. A line that is not JSON raises KilnError
    naming it."""
    import json
    path = os.path.join(run_dir, "metrics.jsonl")
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
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.json_normalize(rows, sep=".")
