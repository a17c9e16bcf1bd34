"""Dataset protocol: default private/public split, stratification, seeding; loader conformance."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from invbench.data import ImageData, load_protocol, make_protocol
from invbench.registry import DATASETS, summary


def _unique_images(n_per_class: int = 10, n_classes: int = 10) -> ImageData:
    """Images whose pixels encode their index, so every image is identifiable."""
    n = n_per_class * n_classes
    idx = torch.arange(n, dtype=torch.float32)
    x = torch.stack([idx % 50, idx // 50], dim=1).view(n, 1, 1, 2) / 50.0  # (n, 1, 1, 2)
    y = torch.arange(n) % n_classes
    return ImageData("unique", x.contiguous(), y, tuple(f"c{i}" for i in range(n_classes)))


def _ids(x: torch.Tensor) -> set[int]:
    v = torch.round(x.view(len(x), 2) * 50).long()
    return set((v[:, 0] + 50 * v[:, 1]).tolist())


def test_default_split_on_digits() -> None:
    p = load_protocol("digits", seed=0)
    assert p.dataset == "digits"
    assert p.private_classes == (0, 1, 2, 3, 4) and p.public_classes == (5, 6, 7, 8, 9)
    assert p.num_classes == 5 and p.image_shape == (1, 8, 8)
    assert p.class_names == ("0", "1", "2", "3", "4")
    assert sorted(p.private_train.y.unique().tolist()) == [0, 1, 2, 3, 4]
    assert sorted(p.private_test.y.unique().tolist()) == [0, 1, 2, 3, 4]
    assert sorted(p.public.y.unique().tolist()) == [5, 6, 7, 8, 9]
    data = DATASETS.get("digits")(data_dir=None, resolution=None)
    counts = torch.bincount(data.y, minlength=10)
    # stratified: each private class keeps round(20%) of its images for test
    te = torch.bincount(p.private_test.y, minlength=5)
    tr = torch.bincount(p.private_train.y, minlength=5)
    for k in range(5):
        assert int(te[k]) == round(int(counts[k]) * 0.2)
        assert int(te[k] + tr[k]) == int(counts[k])
    assert len(p.public) == int(counts[5:].sum())
    assert "load_digits" in p.source


def test_relabelled_images_come_from_their_class() -> None:
    data = _unique_images()
    p = make_protocol(data, seed=1)
    by_id = {i: int(c) for i, c in enumerate(data.y)}
    for split in (p.private_train, p.private_test):
        ids = torch.round(split.x.view(len(split), 2) * 50).long()
        for (a, b), lab in zip(ids.tolist(), split.y.tolist(), strict=True):
            assert by_id[a + 50 * b] == p.private_classes[lab]


def test_train_test_disjoint_and_complete() -> None:
    data = _unique_images()
    p = make_protocol(data, seed=3)
    tr, te, pub = _ids(p.private_train.x), _ids(p.private_test.x), _ids(p.public.x)
    assert len(tr) == len(p.private_train) and len(te) == len(p.private_test)
    assert not tr & te and not (tr | te) & pub
    private_ids = {i for i in range(len(data.y)) if int(data.y[i]) < 5}
    assert tr | te == private_ids
    assert pub == set(range(len(data.y))) - private_ids


def test_seeded() -> None:
    data = _unique_images()
    a, b, c = (make_protocol(data, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.private_train.x, b.private_train.x)
    assert torch.equal(a.private_test.y, b.private_test.y)
    assert a.fingerprint() == b.fingerprint()
    assert not torch.equal(a.private_train.x, c.private_train.x)
    assert a.fingerprint() != c.fingerprint()


def test_load_protocol_custom_classes() -> None:
    p = load_protocol("digits", private_classes=[9, 3], seed=0)
    assert p.private_classes == (9, 3) and p.class_names == ("9", "3")
    assert sorted(p.public_classes) == [0, 1, 2, 4, 5, 6, 7, 8]
    data = DATASETS.get("digits")(data_dir=None, resolution=None)
    nine = data.x[data.y == 9]
    # target label 0 means original class 9
    first = p.private_train.x[p.private_train.y == 0][0]
    assert bool((nine == first).flatten(1).all(1).any())


@pytest.mark.parametrize("name", DATASETS.names())
def test_loader_conformance(name: str) -> None:
    loader = DATASETS.get(name)
    params = inspect.signature(loader).parameters
    for arg in ("data_dir", "resolution"):
        assert arg in params and params[arg].kind is inspect.Parameter.KEYWORD_ONLY
    line = summary(loader)
    assert line and len(line) <= 100


def test_expected_datasets_registered() -> None:
    assert {"digits", "mnist", "fashion-mnist", "image-folder"} <= set(DATASETS.names())
    assert np.all([callable(DATASETS.get(n)) for n in DATASETS.names()])
