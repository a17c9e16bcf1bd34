"""Datasets and protocols.

Each dataset module registers a loader ``load(*, data_dir, resolution) -> ImageData`` with
:func:`~invbench.registry.register_dataset`. :func:`load_protocol` is what the runner calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from invbench.data import digits, fashion_mnist, image_folder, mnist  # noqa: F401  (registration)
from invbench.data.protocol import ImageData, Protocol, Split, make_protocol
from invbench.registry import DATASETS

__all__ = ["ImageData", "Protocol", "Split", "load_dataset", "load_protocol", "make_protocol"]


def load_dataset(
    name: str, *, data_dir: str | Path | None = None, resolution: int | None = None
) -> ImageData:
    """Load every image of dataset ``name`` (see ``invbench list`` for the names)."""
    loader = DATASETS.get(name)
    return loader(data_dir=Path(data_dir) if data_dir is not None else None, resolution=resolution)


def load_protocol(
    name: str,
    *,
    data_dir: str | Path | None = None,
    resolution: int | None = None,
    private_classes: Sequence[int] | None = None,
    public_classes: Sequence[int] | None = None,
    test_fraction: float = 0.2,
    max_per_class: int | None = None,
    seed: int = 0,
) -> Protocol:
    """Load dataset ``name`` and split it into a :class:`Protocol` (see :func:`make_protocol`)."""
    data = load_dataset(name, data_dir=data_dir, resolution=resolution)
    return make_protocol(
        data,
        private_classes=private_classes,
        public_classes=public_classes,
        test_fraction=test_fraction,
        max_per_class=max_per_class,
        seed=seed,
    )
