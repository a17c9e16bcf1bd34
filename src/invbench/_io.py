"""Small I/O helpers every layer may use: canonical JSON, content hashes, atomic writes.

* :func:`canonical_json` / :func:`sha256_hex`: a deterministic text (and hash) of plain data,
  the content address of cache entries and stored runs.
* :func:`atomic_path`: write a file so that readers see the old or the complete new one.
* :func:`file_sha256`: the digest of a file's bytes (cache entries carry one).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any

import torch

# --------------------------------------------------------------------------- canonical JSON


def _canon(obj: Any, where: str) -> Any:
    """Convert ``obj`` to plain JSON types, deterministically; raise on anything else."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return _canon(obj.value, where)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"{where} is {obj!r}; only finite numbers can be hashed/stored")
        return float(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a non-string key {k!r} ({type(k).__name__})")
            out[k] = _canon(v, f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [_canon(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [_canon(v, f"{where}{{}}") for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, torch.dtype):
        return str(obj)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic models (Params)
        return _canon(obj.model_dump(mode="json"), where)
    # numpy scalars (and 0-d arrays) without importing numpy here
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return _canon(obj.item(), where)
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__name__}, which is not JSON-able; "
        "pass plain str/int/float/bool/None, lists, tuples, dicts or Paths"
    )


def canonical(obj: Any) -> Any:
    """``obj`` as plain JSON types: tuples become lists, Paths strings, pydantic models dicts.

    Raises ``TypeError`` for anything that is not JSON-able (tensors, arrays, arbitrary
    objects, non-string dict keys) and ``ValueError`` for NaN/Inf.
    """
    return _canon(obj, "value")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text of ``obj``: sorted keys, no whitespace, floats by ``repr``.

    The same logical value always gives the same text (``(1, 2)`` and ``[1, 2]`` alike;
    ``1`` and ``1.0`` differ), so its hash is a stable content address.
    """
    return json.dumps(
        _canon(obj, "value"), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
        allow_nan=False,
    )


def sha256_hex(obj: Any) -> str:
    """Hex SHA-256 of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("ascii")).hexdigest()


# --------------------------------------------------------------------------- small helpers


def invbench_version() -> str:
    """The installed invbench version (``"unknown"`` when run from an uninstalled tree)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("invbench")
    except PackageNotFoundError:  # pragma: no cover - only outside an install
        return "unknown"


def default_cache_dir() -> Path:
    """``$INVBENCH_CACHE`` if set, else ``./.invbench-cache``."""
    return Path(os.environ.get("INVBENCH_CACHE", ".invbench-cache"))


def _fsync_dir(directory: Path) -> None:
    if os.name != "posix":  # pragma: no cover - directories cannot be opened on Windows
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# the process's umask, read once at import (os.umask can only be read by setting it)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success fsync it and move it into place.

    If the body raises, the temporary file is removed and ``path`` is left untouched, so
    readers see either the old file or the complete new one, never a partial write.

    Example::

        with atomic_path("grid.png") as tmp:
            image.save(tmp, format="PNG")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # as open() would make it, not mkstemp's 0600
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def file_sha256(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of the bytes of the file at ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
