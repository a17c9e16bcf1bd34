"""The ``digits`` dataset: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from invbench.data.idx import check_resolution, to_images
from invbench.data.protocol import ImageData
from invbench.errors import ConfigError
from invbench.registry import register_dataset

#: Number of images in scikit-learn's copy of the UCI optical digits test set.
NUM_IMAGES = 1797
CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))


@register_dataset("digits")
def load(*, data_dir: Path | None = None, resolution: int | None = None) -> ImageData:
    """Handwritten digits bundled with scikit-learn: 1,797 grayscale 8x8 images, 10 classes.

    The UCI optical-recognition digits as shipped by :func:`sklearn.datasets.load_digits`
    (pixel counts 0..16, divided by 16). Always available offline; the default dataset of
    ``invbench run`` and of the tests.

    Args:
        data_dir: must be ``None`` (the data is bundled).
        resolution: resize to ``resolution`` x ``resolution`` (4..512); ``None`` keeps 8x8.

    Returns:
        :class:`ImageData` with ``x`` float32 (1797, 1, 8, 8) in [0, 1] and ``y`` int64 0..9.

    Example::

        >>> data = load(data_dir=None, resolution=None)
        >>> tuple(data.x.shape)
        (1797, 1, 8, 8)
    """
    if data_dir is not None:
        raise ConfigError(
            f"dataset 'digits' is bundled with scikit-learn and takes no --data-dir "
            f"(got {data_dir})"
        )
    res = check_resolution(resolution, dataset="digits")
    from sklearn import __version__ as sklearn_version
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float32)  # (N, 8, 8), values 0..16
    x = to_images(images, scale=16.0, resolution=res)
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return ImageData(
        name="digits",
        x=x,
        y=y,
        class_names=CLASS_NAMES,
        source=f"sklearn.datasets.load_digits (scikit-learn {sklearn_version})",
    )
