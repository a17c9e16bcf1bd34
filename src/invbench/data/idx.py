"""IDX files (the MNIST format) and the helpers the image loaders share.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a 4-byte magic number
``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian uint32 dimensions, then the data in
row-major order, big-endian. Files may be gzip-compressed (detected from the content, not the
name). :func:`read_idx` is strict: a bad magic number, an unknown type code, a truncated body
or trailing bytes are each a one-line :class:`~invbench.errors.DataError` naming the file.

Example::

    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
    >>> _ = write_idx(p, np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx(p).tolist()
    [3, 1, 4]
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from invbench.data.transforms import resize
from invbench.errors import ConfigError, DataError

#: IDX type code -> numpy dtype (big-endian, as stored).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES: dict[tuple[str, int], int] = {
    (dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()
}

_GZIP_MAGIC = b"\x1f\x8b"

#: Smallest and largest ``resolution`` a loader accepts.
MIN_RESOLUTION, MAX_RESOLUTION = 4, 512


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"IDX file {path} is a directory, expected a file") from None
    except OSError as exc:
        raise DataError(f"cannot read IDX file {path}: {exc.strerror or exc}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"IDX file {path} is a corrupt or truncated gzip file ({msg})"
            ) from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a native-endian numpy array.

    Args:
        path: the file; gzip compression is recognised from the content.

    Returns:
        An array with the file's dtype (uint8, int8, int16, int32, float32 or float64) and
        shape (the dimensions in the header). The array is writable and owns its memory.

    Raises:
        DataError: the file is missing, not an IDX file (bad magic number or type code),
            truncated, or longer than its header says.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, no complete header")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"IDX file {path} has a bad magic number 0x{raw[:4].hex()} "
            "(an IDX file starts with 0x0000, a type code and the number of dimensions)"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"IDX file {path} has unknown type code 0x{code:02X} (allowed: {allowed})")
    if ndim == 0:
        raise DataError(f"IDX file {path} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"IDX file {path} is truncated: the header needs {header} bytes, found {len(raw)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    count = int(np.prod(dims, dtype=np.int64))
    need = count * dtype.itemsize
    have = len(raw) - header
    if have < need:
        raise DataError(
            f"IDX file {path} is truncated: shape {dims} needs {need} data bytes, found {have}"
        )
    if have > need:
        raise DataError(
            f"IDX file {path} has {have - need} bytes after the data its header declares "
            f"(shape {dims})"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` (default: name ends .gz).

    Args:
        path: destination file (its parent folder must exist).
        array: uint8, int8, int16, int32, float32 or float64, 1 to 255 dimensions.
        compress: gzip the file; ``None`` means "if the name ends with ``.gz``".

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example::

        write_idx(tmp / "t10k-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    """
    path = Path(path)
    arr = np.asarray(array)
    key = (arr.dtype.kind, arr.dtype.itemsize)
    if key not in _CODES:
        raise DataError(
            f"cannot write {path}: IDX stores uint8, int8, int16, int32, float32 or float64, "
            f"got {arr.dtype}"
        )
    if not 1 <= arr.ndim <= 255:
        raise DataError(f"cannot write {path}: IDX needs 1 to 255 dimensions, got {arr.ndim}")
    if any(d >= 2**32 for d in arr.shape):
        raise DataError(f"cannot write {path}: a dimension of {arr.shape} exceeds 2**32 - 1")
    code = _CODES[key]
    body = (
        bytes([0, 0, code, arr.ndim])
        + np.asarray(arr.shape, dtype=">u4").tobytes()
        + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()
    )
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(body, mtime=0) if compress else body)
    return path


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``directory``: ``stem``, ``stem.gz`` or the dotted spelling.

    ``stem`` is a standard name such as ``"train-images-idx3-ubyte"``; some copies spell it
    ``train-images.idx3-ubyte``, which is accepted too. Returns ``None`` if none exists.
    """
    base, _, tail = stem.rpartition("-idx")
    names = [stem, f"{base}.idx{tail}"] if base else [stem]
    for name in names:
        for candidate in (name, name + ".gz"):
            p = directory / candidate
            if p.is_file():
                return p
    return None


def load_idx_dir(
    directory: Path,
    *,
    dataset: str,
    num_classes: int,
    parts: tuple[str, ...] = ("train", "t10k"),
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Read the MNIST-layout IDX pairs in ``directory`` and concatenate them.

    For each part ``p`` in ``parts`` the pair ``p-images-idx3-ubyte`` / ``p-labels-idx1-ubyte``
    (each optionally ``.gz``) is read if present. At least one complete pair must exist; half
    a pair is an error.

    Returns:
        ``(images, labels, files)``: uint8 (N, H, W), int64 (N,) in ``0..num_classes-1``, and
        the files read.
    """
    if not directory.exists():
        raise DataError(f"{dataset}: data directory {directory} does not exist")
    if not directory.is_dir():
        raise DataError(f"{dataset}: data directory {directory} is not a directory")
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    files: list[Path] = []
    for part in parts:
        img_stem, lab_stem = f"{part}-images-idx3-ubyte", f"{part}-labels-idx1-ubyte"
        img_path = find_idx_file(directory, img_stem)
        lab_path = find_idx_file(directory, lab_stem)
        if img_path is None and lab_path is None:
            continue
        if img_path is None or lab_path is None:
            missing = img_stem if img_path is None else lab_stem
            raise DataError(
                f"{dataset}: {directory / missing}[.gz] is missing (its pair "
                f"{lab_path or img_path} exists)"
            )
        x, y = read_idx(img_path), read_idx(lab_path)
        if x.ndim != 3 or x.dtype != np.uint8:
            raise DataError(
                f"{dataset}: {img_path} must hold uint8 images of shape (N, H, W), got "
                f"{x.dtype} {x.shape}"
            )
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataError(
                f"{dataset}: {lab_path} must hold integer labels of shape (N,), got "
                f"{y.dtype} {y.shape}"
            )
        if len(x) != len(y):
            raise DataError(
                f"{dataset}: {img_path} has {len(x)} images but {lab_path} has {len(y)} labels"
            )
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(
                f"{dataset}: {lab_path} has labels in [{y.min()}, {y.max()}], "
                f"expected 0..{num_classes - 1}"
            )
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise DataError(
                f"{dataset}: {img_path} holds {x.shape[1]}x{x.shape[2]} images but {files[0]} "
                f"holds {xs[0].shape[1]}x{xs[0].shape[2]}"
            )
        xs.append(x)
        ys.append(y.astype(np.int64))
        files += [img_path, lab_path]
    if not xs:
        wanted = ", ".join(
            f"{p}-images-idx3-ubyte[.gz] + {p}-labels-idx1-ubyte[.gz]" for p in parts
        )
        raise DataError(f"{dataset}: no IDX files in {directory}; expected {wanted}")
    x = np.concatenate(xs) if len(xs) > 1 else xs[0]
    y = np.concatenate(ys) if len(ys) > 1 else ys[0]
    if len(x) == 0:
        raise DataError(f"{dataset}: the IDX files in {directory} hold no images")
    return x, y, files


def check_resolution(resolution: int | None, *, dataset: str) -> int | None:
    """Return ``resolution`` if it is ``None`` or an int in [4, 512], else raise ConfigError."""
    if resolution is None:
        return None
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise ConfigError(
            f"resolution for dataset '{dataset}' must be an integer in "
            f"[{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {resolution!r}"
        )
    if not MIN_RESOLUTION <= int(resolution) <= MAX_RESOLUTION:
        raise ConfigError(
            f"resolution for dataset '{dataset}' must be in [{MIN_RESOLUTION}, "
            f"{MAX_RESOLUTION}], got {int(resolution)}"
        )
    return int(resolution)


def to_images(
    pixels: np.ndarray, *, scale: float, resolution: int | None, chunk: int = 4096
) -> Tensor:
    """Turn a (N, H, W) or (N, C, H, W) pixel array into float32 images in [0, 1].

    Pixels are divided by ``scale`` (255 for bytes). If ``resolution`` is given, images are
    resized to ``resolution`` x ``resolution`` with :func:`invbench.data.transforms.resize`,
    ``chunk`` images at a time so the peak memory stays near the size of the result.
    """
    arr = pixels[:, None] if pixels.ndim == 3 else pixels
    src = torch.from_numpy(np.ascontiguousarray(arr))
    n, c, h, w = src.shape
    if resolution is None or (h, w) == (resolution, resolution):
        return src.to(torch.float32, copy=True).div_(scale)
    out = torch.empty((n, c, resolution, resolution), dtype=torch.float32)
    for i in range(0, n, chunk):
        block = src[i : i + chunk].to(torch.float32, copy=True).div_(scale)
        out[i : i + chunk] = resize(block, resolution)
    return out
