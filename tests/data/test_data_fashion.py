"""The ``fashion-mnist`` loader: generated IDX files and Debian's dataset-fashion-mnist."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import invbench.data.fashion_mnist as fashion_mod
from invbench.data import load_protocol, make_protocol
from invbench.data.idx import write_idx
from invbench.errors import ConfigError, DataError
from invbench.registry import DATASETS

HAS_DEBIAN = (fashion_mod.DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file()


def load(**kw: object):  # noqa: ANN201
    return DATASETS.get("fashion-mnist")(**{"data_dir": None, "resolution": None, **kw})


def make_dir(root: Path, *, gz: bool) -> np.ndarray:
    sfx = ".gz" if gz else ""
    x = np.arange(12 * 28 * 28, dtype=np.int64).reshape(12, 28, 28).astype(np.uint8)
    y = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1], dtype=np.uint8)
    write_idx(root / f"train-images-idx3-ubyte{sfx}", x[:8])
    write_idx(root / f"train-labels-idx1-ubyte{sfx}", y[:8])
    write_idx(root / f"t10k-images-idx3-ubyte{sfx}", x[8:])
    write_idx(root / f"t10k-labels-idx1-ubyte{sfx}", y[8:])
    return x


@pytest.mark.parametrize("gz", [False, True])
def test_from_generated_idx(tmp_path: Path, gz: bool) -> None:
    x = make_dir(tmp_path, gz=gz)
    data = load(data_dir=tmp_path)
    assert data.name == "fashion-mnist" and tuple(data.x.shape) == (12, 1, 28, 28)
    np.testing.assert_array_equal(np.round(data.x[:, 0].numpy() * 255).astype(np.uint8), x)
    assert data.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    assert len(data.class_names) == 10
    assert str(tmp_path) in data.source


def test_resolution_and_protocol(tmp_path: Path) -> None:
    make_dir(tmp_path, gz=True)
    assert tuple(load(data_dir=tmp_path, resolution=32).x.shape) == (12, 1, 32, 32)
    p = load_protocol("fashion-mnist", data_dir=tmp_path, private_classes=[0, 1], seed=0)
    assert p.class_names == ("T-shirt/top", "Trouser")
    assert len(p.private_train) == 2 and len(p.private_test) == 2 and len(p.public) == 8
    with pytest.raises(ConfigError, match="resolution"):
        load(data_dir=tmp_path, resolution=1000)


def test_labels_out_of_range(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([3, 11], np.uint8))
    with pytest.raises(DataError, match=r"labels in \[3, 11\]") as err:
        load(data_dir=tmp_path)
    assert str(tmp_path / "train-labels-idx1-ubyte") in str(err.value)


def test_missing_debian_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_mod, "DEBIAN_DIR", tmp_path / "absent")
    with pytest.raises(DataError, match=r"apt-get install dataset-fashion-mnist.*--data-dir"):
        load()
    (tmp_path / "absent").mkdir()  # the folder without its files reads as absent too
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        load()


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as err:
        load(data_dir=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


@pytest.mark.skipif(not HAS_DEBIAN, reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_package() -> None:
    data = load()
    assert tuple(data.x.shape) == (70000, 1, 28, 28)
    assert torch.bincount(data.y).tolist() == [7000] * 10
    assert float(data.x.min()) == 0.0 and float(data.x.max()) == 1.0
    assert str(fashion_mod.DEBIAN_DIR / "t10k-labels-idx1-ubyte.gz") in data.source
    # trousers are tall and narrow, bags wide: compare the ink at the left/right borders
    trouser = data.x[data.y == 1][:, 0, :, :4].mean()
    bag = data.x[data.y == 8][:, 0, :, :4].mean()
    assert float(bag) > 2 * float(trouser)
    p = make_protocol(data, seed=0)
    assert len(p.private_test) == 5 * 1400 and len(p.public) == 35000
