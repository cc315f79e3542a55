"""kiln.InferenceSession against onnxruntime on the same ONNX files (issue 20, first step).

Run by `make test` (pytest, with KILN_BIN naming the kiln binary that writes the models and
KILN_LIBRARY the library under test)."""
import os
import subprocess
import threading

import numpy as np
import onnxruntime as ort
import pytest

import kiln

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILN = os.environ.get("KILN_BIN", os.path.join(ROOT, ".build", "release", "kiln"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    out = {}
    for name in ("resnet8-mnist", "resnet32-cifar"):
        path = str(d / f"{name}.onnx")
        subprocess.run([KILN, "convert", os.path.join(ROOT, "models", f"{name}.kiln"), "-o", path, "--seed", "7"], check=True, capture_output=True)
        out[name] = path
    return out


def images(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def reference(path, x):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("name,shape", [("resnet8-mnist", (1, 28, 28)), ("resnet32-cifar", (3, 32, 32))])
@pytest.mark.parametrize("batch", [1, 5])
def test_outputs_equal_onnxruntime(models, name, shape, batch):
    session = kiln.InferenceSession(models[name], threads=2)
    x = images((batch,) + shape, batch)
    got, = session.run(None, {session.get_inputs()[0].name: x})
    want = reference(models[name], x)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    assert (got.argmax(1) == want.argmax(1)).all()


def test_describes_inputs_and_outputs(models):
    session = kiln.InferenceSession(models["resnet8-mnist"])
    (i,), (o,) = session.get_inputs(), session.get_outputs()
    assert (i.name, i.shape, i.type) == ("image", ["N", 1, 28, 28], "tensor(float)")
    assert (o.name, o.shape) == ("linear", ["N", 10])


def test_onnxruntime_quick_start_with_kiln_substituted(models):
    # onnxruntime's quick start, with only the construction changed.
    session = kiln.InferenceSession(models["resnet8-mnist"], providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    x = images((2, 1, 28, 28), 3)
    result = session.run([output_name], {input_name: x})
    assert len(result) == 1 and result[0].shape == (2, 10)


def test_errors_raise_with_kilns_message(models, tmp_path):
    with pytest.raises(kiln.KilnError, match="cannot read"):
        kiln.InferenceSession(str(tmp_path / "missing.onnx"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(kiln.KilnError):
        kiln.InferenceSession(str(bad))
    session = kiln.InferenceSession(models["resnet8-mnist"])
    with pytest.raises(kiln.KilnError, match="expected shape"):
        session.run(None, {"image": images((1, 1, 27, 28), 0)})
    with pytest.raises(kiln.KilnError, match="float32"):
        session.run(None, {"image": images((1, 1, 28, 28), 0).astype(np.float64)})
    with pytest.raises(kiln.KilnError, match="unknown output"):
        session.run(["probabilities"], {"image": images((1, 1, 28, 28), 0)})
    with pytest.raises(kiln.KilnError, match="missing input"):
        session.run(None, {})


def test_threads_share_one_session(models):
    session = kiln.InferenceSession(models["resnet8-mnist"], threads=2)
    inputs = [images((1 + k % 3, 1, 28, 28), 100 + k) for k in range(8)]
    results = [None] * len(inputs)

    def work(k):
        for _ in range(3):
            results[k] = session.run(None, {"image": inputs[k]})[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, got in zip(inputs, results):
        want = reference(models["resnet8-mnist"], x)
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_read_metrics(tmp_path):
    run = tmp_path / "run"
    subprocess.run([KILN, "train", "--model", os.path.join(ROOT, "models", "resnet8-mnist.kiln"),
                    "--data", os.path.join(ROOT, "data", "mnist5k", "mnist5k-images-idx3-ubyte.gz"), "--split-first", "400",
                    "--lt-profile", "exp", "--lt-ratio", "100", "--epochs", "2", "--threads", "2", "--out", str(run)],
                   check=True, capture_output=True)
    rows = kiln.read_metrics(str(run))
    if not isinstance(rows, list):  # pandas installed: a DataFrame
        rows = rows.to_dict("records")
    with open(run / "metrics.jsonl") as f:
        lines = [l for l in f.read().splitlines() if l]
    assert len(rows) == len(lines) == 2
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(0 <= r["trainAccuracy"] <= 1 for r in rows)
    with open(run / "metrics.jsonl", "a") as f:
        f.write("{not json\n")
    with pytest.raises(kiln.KilnError, match="line 3"):
        kiln.read_metrics(str(run))
    with pytest.raises(kiln.KilnError, match="cannot read"):
        kiln.read_metrics(str(tmp_path / "nowhere"))


def test_odd_arrays_and_options(models):
    # A read-only array and a non-contiguous view give the same outputs as onnxruntime.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = kiln.InferenceSession(models["resnet8-mnist"], options)
    x = images((3, 1, 28, 28), 11)
    want = reference(models["resnet8-mnist"], x)
    frozen = x.copy()
    frozen.flags.writeable = False
    strided = np.ascontiguousarray(np.concatenate([x, x], axis=3))[:, :, :, :28]
    strided[...] = x
    assert not strided.flags.c_contiguous
    for value in (frozen, strided):
        got, = session.run(None, {"image": value})
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    got, = session.run(["linear"], {"image": x})
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
    with pytest.raises(kiln.KilnError, match="precision 'int4'"):
        kiln.InferenceSession(models["resnet8-mnist"], precision="int4")
    # bf16: within bfloat16's rounding of f32 (8-bit mantissas, sums in f32).
    narrow = kiln.InferenceSession(models["resnet8-mnist"], precision="bf16")
    got, = narrow.run(None, {"image": x})
    assert np.abs(got - want).max() <= 0.05 * np.abs(want).max()
    narrow.close()
    session.close()
    with pytest.raises(kiln.KilnError, match="closed"):
        session.run(None, {"image": x})
