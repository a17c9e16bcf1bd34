"""The ``fashion-mnist`` dataset (Xiao et al. 2017): 70,000 28x28 grayscale clothing images.

Read from IDX files (the MNIST layout). By default from the location where Debian's
``dataset-fashion-mnist`` package installs them, :data:`DEBIAN_DIR`
(``/usr/share/datasets/fashion-mnist``, gzipped train and t10k files).
"""

from __future__ import annotations

from pathlib import Path

import torch

from invbench.data.idx import check_resolution, load_idx_dir, to_images
from invbench.data.protocol import ImageData
from invbench.errors import DataError
from invbench.registry import register_dataset

#: Where ``apt-get install dataset-fashion-mnist`` puts the four gzipped IDX files.
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@register_dataset("fashion-mnist")
def load(*, data_dir: Path | None = None, resolution: int | None = None) -> ImageData:
    """Fashion-MNIST clothing images, 28x28 grayscale, 10 classes (Debian package or --data-dir).

    Paper: H. Xiao, K. Rasul, R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
    Benchmarking Machine Learning Algorithms", 2017, https://arxiv.org/abs/1708.07747.

    Args:
        data_dir: folder with ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally
            ``.gz``; at least one complete pair). ``None`` reads :data:`DEBIAN_DIR`.
        resolution: resize to ``resolution`` x ``resolution`` (4..512); ``None`` keeps 28x28.

    Returns:
        :class:`ImageData`: ``x`` float32 (N, 1, 28, 28) in [0, 1], ``y`` int64 0..9, class
        names ``("T-shirt/top", "Trouser", ...)``.

    Example::

        >>> data = load(data_dir=None, resolution=None)  # after apt-get install ...
        >>> tuple(data.x.shape)
        (70000, 1, 28, 28)
    """
    res = check_resolution(resolution, dataset="fashion-mnist")
    if data_dir is None:
        if not DEBIAN_DIR.is_dir() or not any(DEBIAN_DIR.glob("*-idx[13]-ubyte*")):
            raise DataError(
                f"fashion-mnist: {DEBIAN_DIR} not found; install Debian's dataset-fashion-mnist "
                "(apt-get install dataset-fashion-mnist) or pass --data-dir with the IDX files"
            )
        directory = DEBIAN_DIR
    else:
        directory = Path(data_dir)
    images, labels, files = load_idx_dir(
        directory, dataset="fashion-mnist", num_classes=len(CLASS_NAMES)
    )
    return ImageData(
        name="fashion-mnist",
        x=to_images(images, scale=255.0, resolution=res),
        y=torch.from_numpy(labels),
        class_names=CLASS_NAMES,
        source="IDX: " + ", ".join(str(f) for f in files),
    )
