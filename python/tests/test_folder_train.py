"""kiln.infer_folder and kiln.train (issue 20), against onnxruntime and the run's own files.

Run by `make test`; KILN_BIN names the kiln program these run."""
import json
import os
import subprocess
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

import kiln

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILN = os.environ.get("KILN_BIN", os.path.join(ROOT, ".build", "release", "kiln"))
MNIST = os.path.join(ROOT, "data", "mnist5k", "mnist5k-images-idx3-ubyte.gz")


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "resnet8.onnx")
    subprocess.run([KILN, "convert", os.path.join(ROOT, "models", "resnet8-mnist.kiln"), "-o", path, "--seed", "3"],
                   check=True, capture_output=True)
    return path


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_infer_folder_matches_onnxruntime(mnist_model, tmp_path):
    # Grey 28×28 PNGs in nested folders, an odd file and a file that is not an image.
    rng = np.random.default_rng(5)
    folder = tmp_path / "images"
    (folder / "b").mkdir(parents=True)
    pixels = {}
    for name in ["a1.png", "a2.png", "b/c3.png", "b/c4.png", "z5.png"]:
        p = folder / name
        pixels[str(p)] = rng.integers(0, 256, (28, 28), dtype=np.uint8)
        Image.fromarray(pixels[str(p)], "L").save(p)
    (folder / "b" / "broken.png").write_bytes(b"this is not a PNG")
    (folder / "notes.txt").write_text("ignored by name")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = kiln.infer_folder(mnist_model, str(folder), top_k=3, batch=2, threads=2)
    messages = [str(w.message) for w in caught]
    assert any("no Kiln preprocessing metadata" in m for m in messages), messages
    assert any("1 file under" in m for m in messages), messages

    # Sorted order, as `kiln infer` lists; the broken file skipped with its reason.
    assert [r["path"] for r in rows] == sorted(pixels)
    assert [s[0] for s in rows.skipped] == [str(folder / "b" / "broken.png")]
    assert rows.skipped[0][1]

    # Independent preprocessing: the pixels in [0, 1] (the model's input size, no resize).
    x = np.stack([pixels[p] for p in sorted(pixels)]).astype(np.float32)[:, None] / 255
    s = ort.InferenceSession(mnist_model, providers=["CPUExecutionProvider"])
    probs = softmax(s.run(None, {s.get_inputs()[0].name: x})[0])
    for row, p in zip(rows, probs):
        want = np.argsort(-p, kind="stable")[:3]
        assert [t["index"] for t in row["top"]] == list(want)
        assert [t["label"] for t in row["top"]] == [str(k) for k in want]
        assert np.allclose([t["probability"] for t in row["top"]], p[want], atol=2e-6)


def test_infer_folder_errors(mnist_model, tmp_path):
    with pytest.raises(kiln.KilnError, match="nowhere"):
        kiln.infer_folder(mnist_model, str(tmp_path / "nowhere"))
    with pytest.raises(kiln.KilnError, match="missing.onnx"):
        kiln.infer_folder(str(tmp_path / "missing.onnx"), str(tmp_path))
    with pytest.raises(kiln.KilnError, match="top_k"):
        kiln.infer_folder(mnist_model, str(tmp_path), top_k=0)


@pytest.fixture(scope="module")
def stopped_then_resumed(tmp_path_factory):
    """A 3-epoch run stopped by its callback after epoch 1, then resumed to the end."""
    out = str(tmp_path_factory.mktemp("train") / "run")
    settings = dict(model=os.path.join(ROOT, "models", "resnet8-mnist.kiln"), data=MNIST, split_first=400,
                    lt_profile="exp", lt_ratio=100, loss="ldam", rule="drw", epochs=3, warmup=1, crop_padding=2,
                    flip=False, threads=2)
    first = []
    stopped = kiln.train(out, callback=lambda e: first.append(e) and False or False, quiet=True, **settings)
    second = []
    finished = kiln.train(out, resume=True, callback=second.append, quiet=True)
    return out, first, stopped, second, finished


def test_train_callback_stop_and_resume(stopped_then_resumed):
    out, first, stopped, second, finished = stopped_then_resumed
    # The callback saw epoch 1 and stopped the run: the checkpoint is there, no export.
    assert [e["epoch"] for e in first] == [1]
    assert stopped.stopped and stopped.model is None
    assert os.path.exists(os.path.join(out, "checkpoint.kcp"))
    # The resumed run reported the two remaining epochs, each as metrics.jsonl holds it.
    with open(os.path.join(out, "metrics.jsonl")) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    assert [e["epoch"] for e in lines] == [1, 2, 3]
    assert second == lines[1:]
    assert not finished.stopped and finished.metrics == lines
    assert finished.model == os.path.join(out, "model.onnx")


def test_trained_model_runs_as_in_onnxruntime(stopped_then_resumed):
    # The run's export: a session from its bytes, its metadata, its outputs against onnxruntime.
    model = stopped_then_resumed[4].model
    with open(model, "rb") as f:
        session = kiln.InferenceSession(f.read(), threads=2)
    assert session.get_modelmeta().class_names == [str(k) for k in range(10)]
    x = np.random.default_rng(9).random((7, 1, 28, 28), dtype=np.float32)
    got, = session.run(None, {"image": x})
    s = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    want = s.run(None, {s.get_inputs()[0].name: x})[0]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_train_errors_carry_kilns_message(tmp_path):
    with pytest.raises(kiln.KilnError, match="nope"):
        kiln.train(str(tmp_path / "run"), model=os.path.join(ROOT, "models", "resnet8-mnist.kiln"), data=MNIST,
                   loss="nope", quiet=True)
    with pytest.raises(kiln.KilnError, match="Unknown option '--bogus'"):
        kiln.train(str(tmp_path / "run"), bogus=1, quiet=True)
    with pytest.raises(kiln.KilnError, match="missing.gz"):
        kiln.train(str(tmp_path / "run"), model=os.path.join(ROOT, "models", "resnet8-mnist.kiln"),
                   data=str(tmp_path / "missing.gz"), epochs=1, quiet=True)


def test_options_become_cli_flags():
    from kiln._program import cli_options
    assert cli_options(dict(crop_padding=2, flip=False, resume=False, randaugment=(2, 9), sam=None, lr=0.05)) == \
        ["--crop-padding", "2", "--no-flip", "--randaugment", "2,9", "--lr", "0.05"]


def test_help_is_useful():
    doc = kiln.InferenceSession.__doc__ + kiln.InferenceSession.run.__doc__
    for word in ("onnxruntime", "threads", "precision", "float32", "KilnError"):
        assert word in doc


def test_package_finds_its_native_parts():
    # Installed: the copies pip put in kiln/_bin; from a clone: the release build.
    assert os.path.isfile(kiln.library_path()) and os.access(kiln.program_path(), os.X_OK)
    out = subprocess.run([kiln.program_path(), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == kiln.__version__
