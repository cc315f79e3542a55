"""Where the package finds Kiln's native parts: libKilnC.so (the C ABI the sessions call) and
the `kiln` program (which `infer_folder` and `train` run).

Each is looked up in order: an environment variable (KILN_LIBRARY, KILN_BIN), the copy that
`pip install ./python` put inside the package (kiln/_bin/), then the repository's release
build (.build/release/, when the package is used from a clone with PYTHONPATH=python), and
for the program, `kiln` on PATH.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import threading
from typing import Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPOSITORY_BUILD = os.path.join(os.path.dirname(os.path.dirname(_HERE)), ".build", "release")


class KilnError(RuntimeError):
    """An error Kiln reported: its one-line message (a bad model file, a wrong shape or dtype,
    an unknown output name, a failed run of the `kiln` program)."""


def _candidates(variable: str, filename: str) -> list:
    given = os.environ.get(variable)
    if given:
        return [given]
    return [os.path.join(_HERE, "_bin", filename), os.path.join(_REPOSITORY_BUILD, filename)]


def library_path() -> str:
    """The libKilnC.so this package loads (KILN_LIBRARY, the installed copy, or the
    repository's release build); the first candidate when none exists."""
    paths = _candidates("KILN_LIBRARY", "libKilnC.so")
    return next((p for p in paths if os.path.exists(p)), paths[0])


def program_path() -> str:
    """The `kiln` program that `infer_folder` and `train` run (KILN_BIN, the installed copy,
    the repository's release build, or `kiln` on PATH). Raises KilnError when there is none."""
    paths = _candidates("KILN_BIN", "kiln")
    found = next((p for p in paths if os.path.exists(p)), None) or (None if os.environ.get("KILN_BIN") else shutil.which("kiln"))
    if not found:
        raise KilnError(f"{paths[0]}: no kiln program; install the package with `pip install ./python` "
                        "(which builds it) or set KILN_BIN to a built `kiln`")
    return found


_lib: Optional[ctypes.CDLL] = None
_lib_lock = threading.Lock()


def library() -> ctypes.CDLL:
    """libKilnC.so, loaded once, with its functions' signatures declared."""
    global _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        path = library_path()
        if not os.path.exists(path):
            raise KilnError(f"{path}: no Kiln library; install the package with `pip install ./python` "
                            "(which builds it), build it with `swift build -c release --product KilnC`, or set KILN_LIBRARY")
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise KilnError(f"{path}: cannot load the Kiln library: {e}") from None
        c = ctypes
        lib.kiln_session_open.restype = c.c_void_p
        lib.kiln_session_open.argtypes = [c.c_char_p, c.c_int32, c.c_char_p, c.c_char_p, c.c_int32]
        lib.kiln_session_open_bytes.restype = c.c_void_p
        lib.kiln_session_open_bytes.argtypes = [c.c_char_p, c.c_int64, c.c_int32, c.c_char_p, c.c_char_p, c.c_int32]
        lib.kiln_session_close.restype = None
        lib.kiln_session_close.argtypes = [c.c_void_p]
        lib.kiln_session_count.restype = c.c_int32
        lib.kiln_session_count.argtypes = [c.c_void_p, c.c_int32]
        lib.kiln_session_describe.restype = c.c_int32
        lib.kiln_session_describe.argtypes = [c.c_void_p, c.c_int32, c.c_int32, c.c_char_p, c.c_int32, c.POINTER(c.c_int64), c.c_int32]
        lib.kiln_session_run.restype = c.c_int32
        lib.kiln_session_run.argtypes = [c.c_void_p, c.c_int64, c.c_void_p, c.c_void_p, c.c_void_p, c.c_char_p, c.c_int32]
        lib.kiln_session_last_run_seconds.restype = c.c_double
        lib.kiln_session_last_run_seconds.argtypes = [c.c_void_p]
        lib.kiln_version.restype = c.c_char_p
        lib.kiln_version.argtypes = []
        lib.kiln_session_metadata.restype = c.c_int64
        lib.kiln_session_metadata.argtypes = [c.c_void_p, c.c_char_p, c.c_int64]
        _lib = lib
        return lib

