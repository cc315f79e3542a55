"""Kiln from Python: run, evaluate and train image classifiers with Kiln's compiled CPU kernels.

Inference, as with onnxruntime (only the construction changes)::

    import numpy as np, kiln
    session = kiln.InferenceSession("model.onnx")
    x = np.random.rand(8, 3, 32, 32).astype(np.float32)
    logits, = session.run(None, {session.get_inputs()[0].name: x})

A folder of images, as `kiln infer`::

    rows = kiln.infer_folder("model.onnx", "photos/", top_k=3)
    rows[0]  # {'path': 'photos/cat.png', 'top': [{'label': 'cat', 'index': 3, 'probability': 0.97}, …]}

A training run, as `kiln train`, with a callback per epoch::

    run = kiln.train("runs/demo", model="models/resnet8-mnist.kiln", data="…-images-idx3-ubyte.gz",
                     split_first=400, loss="ldam", rule="drw", epochs=20,
                     callback=lambda epoch: print(epoch["epoch"], epoch["val"]["meanClass"]))
    kiln.read_metrics(run.out)  # every epoch (a pandas DataFrame when pandas is installed)

The sessions call libKilnC.so (Kiln's C ABI) through ctypes, with the GIL released while Kiln
computes; `infer_folder` and `train` run the `kiln` program. `pip install ./python` builds both
with `swift build -c release` and puts them in the package (or copies the ones KILN_LIBRARY and
KILN_BIN name); from a clone, PYTHONPATH=python uses the repository's .build/release. Errors
raise kiln.KilnError with Kiln's one-line message.
"""
from ._native import KilnError, library_path, program_path
from .folders import FolderRows, infer_folder
from .metrics import read_metrics
from .session import InferenceSession, ModelMetadata, NodeArg
from .training import TrainingRun, train

__version__ = "0.1.0"

__all__ = ["InferenceSession", "NodeArg", "ModelMetadata", "KilnError", "infer_folder", "FolderRows",
           "train", "TrainingRun", "read_metrics", "library_path", "program_path", "__version__"]
