"""kiln.InferenceSession: a compiled model run like onnxruntime's InferenceSession."""
from __future__ import annotations

import ctypes
import json
import os
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from ._native import KilnError, library

_MESSAGE_BYTES = 2048


class NodeArg:
    """An input or output as onnxruntime describes it.

    Attributes:
        name: the graph value's name (the key of `run`'s input feed, or an output name).
        shape: a list of dimensions; the batch (a symbolic dimension) is the string "N".
        type: the element type in onnxruntime's spelling; always "tensor(float)" here.
    """

    __slots__ = ("name", "shape", "type")

    def __init__(self, name: str, shape: List[Union[int, str]], type: str) -> None:
        self.name, self.shape, self.type = name, shape, type

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, shape={self.shape!r}, type={self.type!r})"


class ModelMetadata:
    """What `get_modelmeta()` returns: `custom_metadata_map`, the model's metadata_props
    (Kiln's exports keep class names, class counts and preprocessing there)."""

    def __init__(self, custom_metadata_map: Dict[str, str]) -> None:
        self.custom_metadata_map = custom_metadata_map

    @property
    def class_names(self) -> Optional[List[str]]:
        """The class names `kiln export` stored (kiln.class_names), or None."""
        text = self.custom_metadata_map.get("kiln.class_names")
        if text is None:
            return None
        try:
            names = json.loads(text)
        except ValueError:
            return None
        return names if isinstance(names, list) else None

    def __repr__(self) -> str:
        return f"ModelMetadata(custom_metadata_map={self.custom_metadata_map!r})"


_local = threading.local()


def _message_buffer() -> ctypes.Array:
    # One error-message buffer per thread, so a run allocates none.
    buffer = getattr(_local, "message", None)
    if buffer is None:
        buffer = _local.message = ctypes.create_string_buffer(_MESSAGE_BYTES)
    return buffer


def _address(array: np.ndarray) -> int:
    # The data pointer of a C-contiguous array, the fast way (a read-only array the slow way).
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(array))
    except (TypeError, ValueError):
        return array.ctypes.data


def _decode(buffer: ctypes.Array) -> str:
    return buffer.value.decode("utf-8", "replace")


class InferenceSession:
    """A model compiled by Kiln for this CPU, run like onnxruntime's InferenceSession.

    Code written for onnxruntime runs with only the construction changed::

        import kiln
        session = kiln.InferenceSession("model.onnx")          # was onnxruntime.InferenceSession
        name = session.get_inputs()[0].name
        logits, = session.run(None, {name: images})            # images: float32 [N, C, H, W]

    Args:
        path_or_bytes: an .onnx file (or Kiln's .kiln text IR; a .kiln file of initialiser rules
            gets seeded random weights), or the bytes of an ONNX model (external data files are
            not read then).
        sess_options: accepted for onnxruntime compatibility; its `intra_op_num_threads`, when
            positive, sets the thread count. Everything else in it is ignored.
        providers: accepted and ignored (Kiln runs on the CPU).
        threads: threads per run (None or 0: every core). Overrides sess_options.
        precision: "f32", or "bf16": convolutions with activations and weights rounded to
            bfloat16 (sums in f32) where the CPU has AVX-512 BF16 and the layer runs faster so.
            (A QDQ int8 model runs on Kiln's int8 kernels where the CPU has VNNI.) Anything
            else raises KilnError.

    Inputs and outputs are float32. The first dimension is the batch: any size runs, each
    size compiled once on its first run (a first run is therefore slower). Runs on one
    session from several threads are safe; they run one after another, each on every core.
    The GIL is released while Kiln computes. Errors raise KilnError with Kiln's one-line
    message.
    """

    def __init__(self, path_or_bytes: Union[str, os.PathLike, bytes, bytearray], sess_options: Any = None,
                 providers: Optional[Sequence[Any]] = None, provider_options: Any = None, *,
                 threads: Optional[int] = None, precision: str = "f32") -> None:
        lib = library()
        if threads is None and sess_options is not None:
            threads = getattr(sess_options, "intra_op_num_threads", 0) or None
        if threads is not None and (not isinstance(threads, int) or threads < 0):
            raise KilnError(f"threads must be a whole number ≥ 0 (0: every core), got {threads!r}")
        message = ctypes.create_string_buffer(_MESSAGE_BYTES)
        if isinstance(path_or_bytes, (bytes, bytearray)):
            data = bytes(path_or_bytes)
            handle = lib.kiln_session_open_bytes(data, len(data), threads or 0, precision.encode(), message, len(message))
        else:
            handle = lib.kiln_session_open(os.fsencode(path_or_bytes), threads or 0, precision.encode(), message, len(message))
        if not handle:
            raise KilnError(_decode(message))
        self._lib, self._handle = lib, handle
        self._inputs = [self._describe(0, i) for i in range(lib.kiln_session_count(handle, 0))]
        self._outputs = [self._describe(1, i) for i in range(lib.kiln_session_count(handle, 1))]
        self._output_names = [o.name for o in self._outputs]
        self._output_index = {name: j for j, name in enumerate(self._output_names)}
        # Per input: its name, whether its first dimension is the batch, and the shape the
        # array must have after the batch (the whole shape when it has no batch).
        self._input_checks = [(a.name, bool(a.shape) and a.shape[0] == "N",
                               tuple(a.shape[1:]) if a.shape and a.shape[0] == "N" else tuple(a.shape)) for a in self._inputs]
        self._output_dims = [[None if d == "N" else d for d in o.shape] for o in self._outputs]
        self._pointers = ctypes.c_uint64 * (len(self._inputs) + 2 * len(self._outputs))

    def _describe(self, outputs: int, index: int) -> NodeArg:
        name = ctypes.create_string_buffer(1024)
        dims = (ctypes.c_int64 * 32)()
        rank = self._lib.kiln_session_describe(self._handle, outputs, index, name, len(name), dims, 32)
        if rank < 0:
            raise KilnError(f"cannot describe {'output' if outputs else 'input'} {index}")
        shape: List[Union[int, str]] = ["N" if d < 0 else int(d) for d in dims[:rank]]
        return NodeArg(name.value.decode("utf-8", "replace"), shape, "tensor(float)")

    def get_inputs(self) -> List[NodeArg]:
        """The model's inputs (name, shape with the batch as "N", type)."""
        return list(self._inputs)

    def get_outputs(self) -> List[NodeArg]:
        """The model's outputs (name, shape with the batch as "N", type)."""
        return list(self._outputs)

    def get_providers(self) -> List[str]:
        """For onnxruntime compatibility: Kiln's one "provider", its compiled CPU kernels."""
        return ["KilnCPU"]

    def get_modelmeta(self) -> ModelMetadata:
        """The model's metadata_props, as onnxruntime's `get_modelmeta().custom_metadata_map`."""
        size = self._lib.kiln_session_metadata(self._handle, None, 0)
        buffer = ctypes.create_string_buffer(size + 1)
        self._lib.kiln_session_metadata(self._handle, buffer, len(buffer))
        return ModelMetadata(json.loads(buffer.value.decode("utf-8", "replace")))

    @property
    def last_run_seconds(self) -> float:
        """Seconds the last finished run spent inside Kiln (copying the inputs in, executing,
        copying the outputs out; not a first run's compilation). What is left of a `run`
        call's time is the Python side's overhead."""
        return self._lib.kiln_session_last_run_seconds(self._handle)

    def run(self, output_names: Optional[Sequence[str]], input_feed: Mapping[str, np.ndarray],
            run_options: Any = None) -> List[np.ndarray]:
        """Runs the model and returns the outputs named in `output_names` (None: all, in the
        model's order) as new float32 numpy arrays.

        `input_feed` maps every input's name to a float32 numpy array of its shape, the batch
        first (a C-contiguous array is read in place; any other is copied once). Raises
        KilnError on a missing input, a wrong shape or dtype, or an unknown output name.
        """
        if not self._handle:
            raise KilnError("the session is closed")
        if output_names is not None:
            try:
                wanted = [self._output_index[n] for n in output_names]
            except (KeyError, TypeError):
                unknown = [n for n in output_names if n not in self._output_index]
                raise KilnError(f"unknown output name{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                                f"the model's outputs are {', '.join(self._output_names)}") from None
        pointers = self._pointers()
        arrays = []
        batch = None
        k = 0
        for name, batched, tail in self._input_checks:
            try:
                value = input_feed[name]
            except KeyError:
                missing = [c[0] for c in self._input_checks if c[0] not in input_feed]
                raise KilnError(f"missing input{'s' if len(missing) > 1 else ''} {', '.join(missing)}") from None
            if type(value) is not np.ndarray or value.dtype != np.float32:
                got = f"a numpy {value.dtype} array" if isinstance(value, np.ndarray) else type(value).__name__
                raise KilnError(f"input {name}: expected a numpy float32 array, got {got}")
            shape = value.shape
            if (shape[1:] != tail or not shape) if batched else shape != tail:
                expected = (["N"] if batched else []) + list(tail)
                raise KilnError(f"input {name}: expected shape {expected}, got {list(shape)}")
            n = shape[0] if batched else 1
            if n != batch:
                if batch is not None:
                    raise KilnError(f"inputs disagree on the batch: {batch} and {n}")
                if n < 1:
                    raise KilnError(f"input {name}: the batch must hold at least one image, got {n}")
                batch = n
            if not value.flags.c_contiguous:
                value = np.ascontiguousarray(value)
            arrays.append(value)  # referenced until the call returns
            pointers[k] = _address(value)
            k += 1
        batch = batch or 1
        outs = []
        m = len(self._output_dims)
        for dims in self._output_dims:
            out = np.empty([batch if d is None else d for d in dims], np.float32)
            pointers[k] = _address(out)
            pointers[k + m] = out.size
            outs.append(out)
            k += 1
        base = ctypes.addressof(pointers)
        message = _message_buffer()
        # ctypes releases the GIL for the call.
        if self._lib.kiln_session_run(self._handle, batch, base, base + 8 * len(arrays), base + 8 * k, message,
                                      _MESSAGE_BYTES) != 0:
            raise KilnError(_decode(message))
        return outs if output_names is None else [outs[j] for j in wanted]

    def close(self) -> None:
        """Frees the compiled programs now (otherwise when the session is garbage-collected)."""
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._lib.kiln_session_close(handle)

    def __enter__(self) -> "InferenceSession":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<kiln.InferenceSession inputs={self._inputs!r} outputs={self._outputs!r}>"
