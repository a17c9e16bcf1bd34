"""The bundled ``digits`` dataset loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from invbench.data import load_dataset
from invbench.errors import ConfigError
from invbench.registry import DATASETS, summary


@pytest.fixture(scope="module")
def digits():
    return DATASETS.get("digits")(data_dir=None, resolution=None)


def test_shape_range_and_classes(digits) -> None:
    assert digits.name == "digits"
    assert tuple(digits.x.shape) == (1797, 1, 8, 8)
    assert digits.x.dtype == torch.float32 and digits.y.dtype == torch.int64
    assert float(digits.x.min()) == 0.0 and float(digits.x.max()) == 1.0
    assert digits.class_names == tuple(str(i) for i in range(10))
    assert digits.num_classes == 10 and digits.image_shape == (1, 8, 8)
    assert torch.bincount(digits.y).tolist() == np.bincount(load_digits().target).tolist()
    assert "load_digits" in digits.source


def test_pixels_are_sklearn_counts_over_16(digits) -> None:
    ref = load_digits()
    np.testing.assert_array_equal(digits.x[:, 0].numpy(), (ref.images / 16.0).astype(np.float32))
    np.testing.assert_array_equal(digits.y.numpy(), ref.target)


def test_resolution_resizes(digits) -> None:
    big = load_dataset("digits", resolution=16)
    assert tuple(big.x.shape) == (1797, 1, 16, 16)
    assert 0.0 <= float(big.x.min()) and float(big.x.max()) <= 1.0
    assert torch.equal(big.y, digits.y)
    # a 2x bilinear upsample keeps the mean intensity of each image closely
    assert torch.allclose(big.x.mean(dim=(1, 2, 3)), digits.x.mean(dim=(1, 2, 3)), atol=0.03)


def test_data_dir_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bundled.*--data-dir"):
        load_dataset("digits", data_dir=tmp_path)


@pytest.mark.parametrize("bad", [3, 513, 0, -8, True, 8.0, "8"])
def test_bad_resolution(bad: object) -> None:
    with pytest.raises(ConfigError, match="resolution"):
        DATASETS.get("digits")(data_dir=None, resolution=bad)


def test_registered_with_summary() -> None:
    assert "digits" in DATASETS.names()
    assert "1,797" in summary(DATASETS.get("digits"))
