"""Protocols: which classes are private (the target's training data) and what is public.

A dataset loader returns :class:`ImageData` (every image of the dataset, original class
ids). :func:`make_protocol` splits it: the private classes are relabelled ``0..k-1`` (the
target's outputs, in the order given) and split stratified and seeded into train/test;
the public split holds the images of the public classes, which the attacker may use.
Default for a dataset with 10 classes: private 0-4, public 5-9 (the MNIST protocol of the
GMI/KEDMI/BiDO line of work).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from invbench.errors import DataError


@dataclass(frozen=True)
class ImageData:
    """All images of a dataset: ``x`` (N, C, H, W) float32 in [0, 1], ``y`` (N,) int64 ids."""

    name: str
    x: Tensor
    y: Tensor
    class_names: tuple[str, ...]
    source: str = ""  # where the data was read from, for the stored spec

    def __post_init__(self) -> None:
        check_images(self.x, what=f"dataset '{self.name}'")
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise DataError(
                f"dataset '{self.name}': {self.x.shape[0]} images but labels of shape "
                f"{tuple(self.y.shape)}"
            )
        if self.y.dtype != torch.int64:
            object.__setattr__(self, "y", self.y.long())

    @property
    def num_classes(self) -> int:
        """Number of classes (target outputs)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]


def check_images(x: Tensor, *, what: str) -> None:
    """Raise a one-line :class:`DataError` unless ``x`` is a finite (N, C, H, W) batch in [0, 1]."""
    if not isinstance(x, Tensor):
        raise DataError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise DataError(f"{what}: expected images of shape (N, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: no images")
    # aminmax propagates NaN and Inf and is far faster than isfinite().all() on big batches.
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DataError(f"{what}: images contain NaN or Inf")
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise DataError(f"{what}: pixel values must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]")


@dataclass(frozen=True)
class Split:
    """Images and labels of one split."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def digest(self) -> str:
        """Content hash (SHA-256 hex) of the images and labels (dtype, shape and bytes)."""
        h = hashlib.sha256()
        for t in (self.x, self.y):
            t = t.detach().contiguous().cpu()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()

    def to(self, device: torch.device | str) -> Split:
        """The split with images and labels on ``device``."""
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Protocol:
    """The private/public split an experiment runs on.

    Attributes:
        dataset: dataset name.
        private_train: the target's training data; labels ``0..k-1``.
        private_test: held-out private images (utility, and the 'real success' reference).
        public: images of the public classes (labels are the original class ids); the only
            data an attacker's prior may be trained on.
        private_classes: original class ids; position ``i`` is target label ``i``.
        public_classes: original class ids of the public split.
        class_names: names of the private classes, by target label.
        seed: the seed of the private train/test split.
    """

    dataset: str
    private_train: Split
    private_test: Split
    public: Split
    private_classes: tuple[int, ...]
    public_classes: tuple[int, ...]
    class_names: tuple[str, ...]
    seed: int
    source: str = ""
    _fingerprint: str = field(default="", repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        """Number of classes (target outputs)."""
        return len(self.private_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.private_train.x.shape[1:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """A content hash of the split (images, labels, classes): part of every cache key."""
        if not self._fingerprint:
            h = hashlib.sha256()
            h.update(repr((self.dataset, self.private_classes, self.public_classes)).encode())
            for split in (self.private_train, self.private_test, self.public):
                h.update(split.digest().encode())
            object.__setattr__(self, "_fingerprint", h.hexdigest()[:16])
        return self._fingerprint

    def describe(self) -> dict[str, object]:
        """A JSON-able summary (classes, sizes, seed, fingerprint) for stored specs."""
        return {
            "dataset": self.dataset,
            "private_classes": list(self.private_classes),
            "public_classes": list(self.public_classes),
            "image_shape": list(self.image_shape),
            "private_train": len(self.private_train),
            "private_test": len(self.private_test),
            "public": len(self.public),
            "seed": self.seed,
            "fingerprint": self.fingerprint(),
        }


def default_split(num_classes: int) -> tuple[list[int], list[int]]:
    """First half of the classes private, second half public (0-4 / 5-9 for 10 classes)."""
    if num_classes < 2:
        raise DataError(f"a protocol needs at least 2 classes, the dataset has {num_classes}")
    half = (num_classes + 1) // 2
    return list(range(half)), list(range(half, num_classes))


def make_protocol(
    data: ImageData,
    *,
    private_classes: Sequence[int] | None = None,
    public_classes: Sequence[int] | None = None,
    test_fraction: float = 0.2,
    max_per_class: int | None = None,
    seed: int = 0,
) -> Protocol:
    """Split ``data`` into private train/test (stratified, seeded) and public.

    ``max_per_class`` caps the images used per class (private and public alike), drawn at
    random with ``seed`` before the split: a 28-px protocol with 1,000 images per class trains
    in minutes on a laptop instead of an hour. ``None`` uses every image.
    """
    n_cls = data.num_classes
    dpriv, dpub = default_split(n_cls)
    priv = list(private_classes) if private_classes is not None else dpriv
    if public_classes is not None:
        pub = list(public_classes)
    else:
        pub = [c for c in range(n_cls) if c not in priv] if private_classes is not None else dpub
    for name, cls in (("private_classes", priv), ("public_classes", pub)):
        bad = [c for c in cls if not 0 <= c < n_cls]
        if bad:
            raise DataError(
                f"{name}: class ids {bad} out of range for '{data.name}' (0..{n_cls - 1})"
            )
        if len(set(cls)) != len(cls):
            raise DataError(f"{name}: class ids repeat: {cls}")
    if len(priv) < 2:
        raise DataError("private_classes: a target needs at least 2 private classes")
    if not pub:
        raise DataError("public_classes: the attacker needs at least 1 public class")
    overlap = sorted(set(priv) & set(pub))
    if overlap:
        raise DataError(f"private and public classes overlap: {overlap}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if max_per_class is not None and (isinstance(max_per_class, bool) or int(max_per_class) < 2):
        raise DataError(f"max_per_class must be an integer >= 2, got {max_per_class!r}")

    rng = np.random.default_rng(seed)
    y = data.y.numpy()
    if max_per_class is not None:
        cap_rng = np.random.default_rng([seed, 1])  # its own stream: no effect on the split
        keep = np.zeros(len(y), dtype=bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if len(idx) > max_per_class:
                idx = cap_rng.choice(idx, size=int(max_per_class), replace=False)
            keep[idx] = True
        y = np.where(keep, y, -1)
    tr_idx: list[np.ndarray] = []
    te_idx: list[np.ndarray] = []
    tr_lab: list[np.ndarray] = []
    te_lab: list[np.ndarray] = []
    for new, c in enumerate(priv):
        idx = np.flatnonzero(y == c)
        if len(idx) < 2:
            raise DataError(
                f"class {c} ({data.class_names[c]!r}) of '{data.name}' has {len(idx)} image(s); "
                "a private class needs at least 2 (train and test)"
            )
        idx = rng.permutation(idx)
        n_te = min(max(1, int(round(len(idx) * test_fraction))), len(idx) - 1)
        te_idx.append(idx[:n_te])
        tr_idx.append(idx[n_te:])
        te_lab.append(np.full(n_te, new))
        tr_lab.append(np.full(len(idx) - n_te, new))
    pub_idx = np.flatnonzero(np.isin(y, pub))
    if len(pub_idx) == 0:
        raise DataError(f"public classes {pub} of '{data.name}' have no images")

    def take(idx: list[np.ndarray], lab: list[np.ndarray]) -> Split:
        i = torch.from_numpy(np.concatenate(idx))
        return Split(data.x[i].contiguous(), torch.from_numpy(np.concatenate(lab)).long())

    return Protocol(
        dataset=data.name,
        private_train=take(tr_idx, tr_lab),
        private_test=take(te_idx, te_lab),
        public=Split(data.x[torch.from_numpy(pub_idx)].contiguous(), data.y[pub_idx].clone()),
        private_classes=tuple(int(c) for c in priv),
        public_classes=tuple(int(c) for c in pub),
        class_names=tuple(data.class_names[c] for c in priv),
        seed=seed,
        source=data.source,
    )
