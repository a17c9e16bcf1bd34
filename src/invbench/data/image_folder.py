"""The ``image-folder`` dataset: any local folder with one sub-folder of images per identity.

Layout::

    data_dir/
      alice/  001.jpg 002.png ...
      bob/    img.jpg ...

Sub-folder names, sorted, are the class names (class id = position). Images are found
recursively inside each sub-folder; hidden files and folders (names starting with ``.``) and
files with other extensions are ignored. Each image is centre-cropped to a square and
resized to ``resolution`` (default 64). The dataset has 1 channel if every image is
grayscale, else 3 (grayscale images are replicated, alpha is dropped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from invbench.data.idx import check_resolution
from invbench.data.protocol import ImageData
from invbench.data.transforms import resize
from invbench.errors import ConfigError, DataError
from invbench.registry import register_dataset

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".pgm", ".ppm", ".tif", ".tiff"}
)
DEFAULT_RESOLUTION = 64
#: Pillow modes that hold one intensity channel (``P``/``PA`` count when the palette is gray).
GRAY_MODES: frozenset[str] = frozenset(
    {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
)
_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_PARALLEL_FROM = 64  # decode in threads from this many images on (Pillow releases the GIL)


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _images_under(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden entries skipped), in sorted order."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        found += [base / f for f in sorted(filenames) if _is_image(base / f)]
    return found


def scan_folder(root: Path) -> tuple[tuple[str, ...], list[list[Path]]]:
    """Class names (sorted visible sub-folders of ``root``) and each class's image files.

    Raises:
        DataError: ``root`` is missing or not a directory, has no sub-folders, or a
            sub-folder holds no images.
    """
    if not root.exists():
        raise DataError(f"image-folder: {root} does not exist")
    if not root.is_dir():
        raise DataError(f"image-folder: {root} is not a directory")
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
        subdirs = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
        if not subdirs:
            loose = sum(1 for p in entries if p.is_file() and _is_image(p))
            hint = f" (found {loose} image files directly inside)" if loose else ""
            raise DataError(
                f"image-folder: {root} has no sub-folders{hint}; put each identity's images "
                "in its own sub-folder"
            )
        files = [_images_under(d) for d in subdirs]
    except OSError as exc:
        raise DataError(
            f"image-folder: cannot list {exc.filename or root}: {exc.strerror}"
        ) from None
    for d, fs in zip(subdirs, files, strict=True):
        if not fs:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise DataError(f"image-folder: sub-folder {d} has no images ({exts})")
    return tuple(d.name for d in subdirs), files


def _gray_palette(im: Image.Image) -> bool:
    pal = im.getpalette() or []
    return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))


def is_grayscale(im: Image.Image) -> bool:
    """Whether a Pillow image has a single intensity channel (palette images: gray palette)."""
    if im.mode in GRAY_MODES:
        return True
    return im.mode in ("P", "PA") and _gray_palette(im)


def _pixels(im: Image.Image, gray: bool, path: Path) -> np.ndarray:
    """(C, H, W) float32 in [0, 1] with C = 1 if ``gray`` else 3."""
    if gray and im.mode in _WIDE_MODES:
        arr = np.asarray(im, dtype=np.float32) / 65535.0
        np.clip(arr, 0.0, 1.0, out=arr)
    elif gray and im.mode == "F":
        arr = np.array(im, dtype=np.float32)  # a writable copy
        if not np.isfinite(arr).all() or arr.min() < 0.0 or arr.max() > 1.0:
            raise DataError(
                f"image-folder: floating-point image {path} must hold values in [0, 1], got "
                f"[{np.nanmin(arr):.3g}, {np.nanmax(arr):.3g}]"
            )
    else:
        arr = np.asarray(im.convert("L" if gray else "RGB"), dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_image(path: Path, *, size: int) -> tuple[Tensor, bool]:
    """Read one image, centre-crop it to a square and resize it to ``size`` x ``size``.

    Returns:
        ``(image, gray)``: float32 (1 or 3, size, size) in [0, 1], and whether it is grayscale.

    Raises:
        DataError: the file cannot be read or decoded (names the file).
    """
    try:
        with Image.open(path) as im:
            gray = is_grayscale(im)
            if im.format == "JPEG":
                im.draft(im.mode, (size, size))  # DCT-domain downscale, never below `size`
            w, h = im.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
            arr = _pixels(im, gray, path)
    except DataError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        msg = (str(exc).splitlines() or [""])[0] or type(exc).__name__
        raise DataError(f"image-folder: cannot read image {path}: {msg}") from None
    x = resize(torch.from_numpy(np.ascontiguousarray(arr))[None], size)[0]
    return x, gray


def _map(
    fn: Callable[[Path], tuple[Tensor, bool]], paths: list[Path]
) -> Iterator[tuple[Tensor, bool]]:
    """``map(fn, paths)`` in order, in threads for many paths; the first error is raised."""
    if len(paths) < _PARALLEL_FROM:
        yield from map(fn, paths)
        return
    pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1))
    try:
        yield from pool.map(fn, paths)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@register_dataset("image-folder")
def load(*, data_dir: Path | None = None, resolution: int | None = None) -> ImageData:
    """Your own images: one sub-folder per identity (png/jpg/bmp/gif/webp/pgm/ppm/tiff).

    Args:
        data_dir: the root folder (required); its sorted visible sub-folder names are the
            class names.
        resolution: side of the square images, 4..512 (default 64); each image is
            centre-cropped to a square, then resized.

    Returns:
        :class:`ImageData`: ``x`` float32 (N, C, r, r) in [0, 1] with C = 1 if every image
        is grayscale else 3; ``y`` int64 class ids in sub-folder order.

    Example::

        >>> data = load(data_dir=Path("faces"), resolution=32)
        >>> data.class_names  # e.g. ('alice', 'bob')
    """
    if data_dir is None:
        raise ConfigError(
            "dataset 'image-folder' needs --data-dir: a folder with one sub-folder of images "
            "per identity"
        )
    size = check_resolution(resolution, dataset="image-folder") or DEFAULT_RESOLUTION
    root = Path(data_dir)
    class_names, files = scan_folder(root)
    paths = [p for fs in files for p in fs]
    labels = np.concatenate([np.full(len(fs), c, dtype=np.int64) for c, fs in enumerate(files)])
    out = torch.empty((len(paths), 3, size, size), dtype=torch.float32)
    gray = np.zeros(len(paths), dtype=bool)

    def read(p: Path) -> tuple[Tensor, bool]:
        return read_image(p, size=size)

    for i, (img, g) in enumerate(_map(read, paths)):
        out[i, : img.shape[0]] = img
        gray[i] = g
    if gray.all():
        x = out[:, :1].contiguous()
    else:
        idx = torch.from_numpy(np.flatnonzero(gray))
        if len(idx):
            out[idx, 1:] = out[idx, :1]
        x = out
    return ImageData(
        name="image-folder",
        x=x,
        y=torch.from_numpy(labels),
        class_names=class_names,
        source=str(root.resolve()),
    )
