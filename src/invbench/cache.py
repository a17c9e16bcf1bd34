"""Content-addressed artifact cache: trained targets, GAN priors, evaluators, features.

An artifact's key is a hash of the canonical JSON of *everything that determines it* (dataset,
protocol, architecture, method and its parameters, seed, ...) plus :data:`FORMAT_VERSION`, so
changing any one of them gives a new key and re-running with the same ones re-uses the file.

Layout on disk::

    <root>/<kind>/<key>.safetensors   tensors; modules as "<module>.<state_dict key>"
    <root>/<kind>/<key>.json          sidecar: parts, created time, versions, the sha256 of
                                      the .safetensors file, extra meta

Writes are atomic (temporary file in the same folder, fsync, :func:`os.replace`) and the JSON
sidecar is written last, so a present sidecar means a complete entry. On load the tensor file's
sha256 must match the sidecar's and every floating tensor must be finite. An entry that cannot
be read or does not match what the caller expects (bad JSON, no digest (an older format), a
digest that does not match, NaN/Inf values, missing keys, wrong shapes) is a miss, reported with
a one-line :class:`CacheWarning` on stderr, and :meth:`Cache.get_or_create` rebuilds and
overwrites it. Nothing is ever unpickled: tensors are safetensors, metadata is JSON.

Example::

    cache = Cache(".invbench-cache")
    model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
    meta, hit = cache.get_or_create(
        "target", {"dataset": "digits", "arch": "cnn-s", "seed": 0}, {"model": model},
        lambda: {"accuracy": train_and_score(model)},
    )
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from invbench._io import (  # noqa: F401  (re-exported for callers of the cache)
    atomic_path,
    canonical,
    canonical_json,
    default_cache_dir,
    file_sha256,
    invbench_version,
    sha256_hex,
)

#: Version of the on-disk artifact format; part of every key, so bumping it invalidates all
#: entries written by older code. Bump it whenever the sidecar format or a model's state-dict
#: layout changes (e.g. how a model is built or trained). 2: sidecars carry ``sha256``.
FORMAT_VERSION = 2

_LOCAL = threading.local()


def _held_locks() -> set[str]:
    """The entry locks this thread holds (what makes :meth:`Cache.lock` reentrant)."""
    held = getattr(_LOCAL, "held", None)
    if held is None:
        held = _LOCAL.held = set()
    return held


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODULE_RE = re.compile(r"^[A-Za-z0-9_-]+$")
#: Sidecar keys written by the cache itself; caller meta may not use them.
RESERVED_META_KEYS = frozenset(
    {"kind", "key", "parts", "format_version", "created", "invbench_version", "entries",
     "sha256"}
)


class CacheWarning(UserWarning):
    """A cache entry was unreadable, damaged or did not match and is treated as a miss."""


def _warn_miss(path: Path, why: str) -> None:
    warnings.warn(
        f"cache entry {path} is unusable ({why}); treating it as a miss, it will be rebuilt",
        CacheWarning,
        stacklevel=3,
    )


def _check_name(value: str, what: str, pattern: re.Pattern[str] = _NAME_RE) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"cache {what} {value!r} must match {pattern.pattern}")
    return value


def _module_tensors(modules: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
    """Flatten the modules' state dicts (parameters and buffers) into one CPU tensor dict."""
    flat: dict[str, torch.Tensor] = {}
    for mname, module in modules.items():
        _check_name(mname, "module name", _MODULE_RE)
        for k, v in module.state_dict().items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"state_dict entry {mname}.{k} is not a tensor ({type(v)})")
            # clone: safetensors refuses tensors that share storage (tied weights, views)
            flat[f"{mname}.{k}"] = v.detach().to("cpu").contiguous().clone()
    return flat


def _non_finite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the first floating tensor (sorted) holding NaN or Inf, else ``None``."""
    for name, t in sorted(tensors.items()):
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            return name
    return None


def _entries(tensors: Mapping[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    return {
        k: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
        for k, t in sorted(tensors.items())
    }


# --------------------------------------------------------------------------- the cache


class Cache:
    """A content-addressed store of trained modules and tensors under ``root``.

    Args:
        root: cache folder (created on first save), e.g. :func:`default_cache_dir`.

    ``kind`` names a sub-folder per artifact type (``"target"``, ``"gan"``, ``"evaluator"``,
    ``"features"``...); ``key`` comes from :meth:`key`. Safe to share between processes (a
    sweep's workers, two sweeps on one folder, a Ray cluster on a shared filesystem): every
    write of an entry and every :meth:`get_or_create` holds an exclusive lock on that key
    (:meth:`lock`, ``fcntl.flock`` on ``.locks/<kind>/<key>.lock``, apart from the entries so
    a failed build leaves its folder empty), so one key is never built twice
    at once — the second caller waits and loads what the first built — and no sidecar is ever
    paired with another writer's tensors. The locks need a filesystem with working POSIX
    ``flock`` (local disks; NFSv4; not every network filesystem).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    def view(self, owner: str) -> CacheView:
        """A cache limited to ``owner``'s entries (what the runner hands an attack).

        Entries of a view live under ``root/views/<owner>/``; the view's methods reach
        nothing else, so an attack cannot read or overwrite a target, an evaluator or another
        attack's prior. ``owner`` is a plain name (letters, digits, ``._-``), e.g.
        ``"attack-gmi"``.
        """
        return CacheView(self, owner)

    # ---- keys and paths

    @staticmethod
    def key(parts: Mapping[str, Any]) -> str:
        """Hash (32 hex chars) of the canonical JSON of ``parts`` and :data:`FORMAT_VERSION`.

        Raises ``TypeError`` if a part is not JSON-able, ``ValueError`` for NaN/Inf.
        """
        if not isinstance(parts, Mapping):
            raise TypeError(f"cache key parts must be a mapping, got {type(parts).__name__}")
        return sha256_hex({"format_version": FORMAT_VERSION, "parts": parts})[:32]

    def path(self, kind: str, key: str) -> Path:
        """Path of the ``.safetensors`` file of an entry (the sidecar has suffix ``.json``)."""
        _check_name(kind, "kind")
        _check_name(key, "key")
        return self.root / kind / f"{key}.safetensors"

    @contextlib.contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Hold the exclusive lock of one entry (reentrant within a thread).

        Other processes and threads that lock the same ``(kind, key)`` wait until it is
        released; the lock goes with the process if it dies (``kill -9`` leaves nothing held).
        Used by :meth:`get_or_create` and every write; callers that load, compute and save an
        entry themselves hold it around all three.
        """
        _check_name(kind, "kind")
        _check_name(key, "key")
        path = self.root / ".locks" / kind / f"{key}.lock"
        held = _held_locks()
        if str(path) in held:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.add(str(path))
            try:
                yield
            finally:
                held.discard(str(path))
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _sidecar(self, kind: str, key: str) -> Path:
        return self.path(kind, key).with_suffix(".json")

    # ---- raw read / write

    def _read(self, kind: str, key: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        from safetensors import SafetensorError
        from safetensors.torch import load

        side, data = self._sidecar(kind, key), self.path(kind, key)
        if not side.exists():
            return None
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            _warn_miss(side, f"unreadable JSON: {exc}")
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("entries"), dict):
            _warn_miss(side, "sidecar has no 'entries' table")
            return None
        if meta.get("format_version") != FORMAT_VERSION or meta.get("key") != key:
            _warn_miss(side, "format version or key does not match")
            return None
        digest = meta.get("sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            _warn_miss(side, "sidecar has no sha256 of its tensor file (older format)")
            return None
        try:
            # one read: the bytes that are hashed are the bytes that are loaded
            raw = data.read_bytes()
        except OSError as exc:
            _warn_miss(data, f"unreadable safetensors: {exc}")
            return None
        if hashlib.sha256(raw).hexdigest() != digest:
            _warn_miss(data, "sha256 of the file does not match its sidecar (damaged)")
            return None
        try:
            tensors = load(raw)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            _warn_miss(data, f"unreadable safetensors: {exc}")
            return None
        if _entries(tensors) != meta["entries"]:
            _warn_miss(data, "tensor names/shapes/dtypes differ from its sidecar")
            return None
        bad = _non_finite(tensors)
        if bad is not None:
            _warn_miss(data, f"tensor '{bad}' holds NaN/Inf")
            return None
        return tensors, meta

    def _write(
        self,
        kind: str,
        key: str,
        tensors: Mapping[str, torch.Tensor],
        meta: Mapping[str, Any],
        parts: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        clash = RESERVED_META_KEYS.intersection(meta)
        if clash:
            raise ValueError(f"cache meta may not use the reserved keys {sorted(clash)}")
        sidecar: dict[str, Any] = dict(canonical(dict(meta)))
        sidecar.update(
            kind=kind,
            key=key,
            parts=None if parts is None else canonical(parts),
            format_version=FORMAT_VERSION,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            invbench_version=invbench_version(),
            entries=_entries(tensors),
        )
        json.dumps(sidecar, allow_nan=False)  # fails here, before anything is written
        with self.lock(kind, key):
            return self._write_locked(kind, key, tensors, sidecar)

    def _write_locked(self, kind: str, key: str, tensors: Mapping[str, torch.Tensor],
                      sidecar: dict[str, Any]) -> dict[str, Any]:
        from safetensors.torch import save_file

        data, side = self.path(kind, key), self._sidecar(kind, key)
        data.parent.mkdir(parents=True, exist_ok=True)
        # Remove the old sidecar first: while the data file is being replaced there is no
        # sidecar, so no reader can pair an old sidecar with a new (or half-written) file.
        with contextlib.suppress(FileNotFoundError):
            side.unlink()
        with atomic_path(data) as tmp:
            save_file(dict(tensors), str(tmp), metadata={"format": "pt", "invbench_key": key})
            sidecar["sha256"] = file_sha256(tmp)
        text = json.dumps(sidecar, sort_keys=True, indent=1, allow_nan=False)
        with atomic_path(side) as tmp:
            tmp.write_text(text, encoding="utf-8")
        return json.loads(text)

    # ---- modules

    def load_modules(
        self, kind: str, key: str, modules: Mapping[str, nn.Module]
    ) -> dict[str, Any] | None:
        """Load a cached entry into freshly built ``modules`` (parameters and buffers).

        Returns the sidecar meta on a hit; ``None`` on a miss or when the entry does not fit
        the modules (missing/extra keys, shapes, dtypes), in which case no module is changed.
        The modules keep their device and ``training`` flag; call ``.eval()`` as needed.
        """
        got = self._read(kind, key)
        if got is None:
            return None
        tensors, meta = got
        states: dict[str, dict[str, torch.Tensor]] = {}
        for mname, module in modules.items():
            _check_name(mname, "module name", _MODULE_RE)
            prefix = f"{mname}."
            stored = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            wanted = module.state_dict()
            if set(stored) != set(wanted):
                missing = sorted(set(wanted) - set(stored))[:3]
                extra = sorted(set(stored) - set(wanted))[:3]
                why = f"module '{mname}' keys differ (missing {missing}, unexpected {extra})"
                _warn_miss(self.path(kind, key), why)
                return None
            for k, v in wanted.items():
                if stored[k].shape != v.shape or stored[k].dtype != v.dtype:
                    why = (
                        f"{mname}.{k} is {tuple(stored[k].shape)} {stored[k].dtype}, "
                        f"the module expects {tuple(v.shape)} {v.dtype}"
                    )
                    _warn_miss(self.path(kind, key), why)
                    return None
            states[mname] = stored
        for mname, module in modules.items():
            module.load_state_dict(states[mname], strict=True)
        return meta

    def save_modules(
        self,
        kind: str,
        key: str,
        modules: Mapping[str, nn.Module],
        meta: Mapping[str, Any],
        *,
        parts: Mapping[str, Any] | None = None,
    ) -> Path:
        """Save the modules' state dicts in one safetensors file plus a JSON sidecar, atomically.

        ``meta`` is extra JSON-able information (e.g. ``{"accuracy": 0.97}``) merged into the
        sidecar; ``parts`` (optional) records what the key was computed from. Returns the
        ``.safetensors`` path.
        """
        self._write(kind, key, _module_tensors(modules), meta, parts)
        return self.path(kind, key)

    def get_or_create(
        self,
        kind: str,
        parts: Mapping[str, Any],
        modules: Mapping[str, nn.Module],
        create: Callable[[], Mapping[str, Any] | None],
    ) -> tuple[dict[str, Any], bool]:
        """Load ``modules`` from the cache, or build them with ``create()`` and cache them.

        On a hit the stored state is loaded into ``modules`` and ``(meta, True)`` is returned;
        on a miss ``create()`` trains the modules in place and returns extra meta (or None),
        the result is saved, and ``(meta, False)`` is returned. ``meta`` is the sidecar
        either way: the caller's keys plus ``parts``, ``created``, ``invbench_version``,
        ``build_seconds`` (time spent in ``create``) and ``entries`` (tensor shapes).
        """
        key = self.key(parts)
        # the lock spans look-up, build and write: a second process asking for the same
        # entry waits here and then loads it instead of building it again
        with self.lock(kind, key):
            meta = self.load_modules(kind, key, modules)
            if meta is not None:
                return meta, True
            t0 = time.perf_counter()
            extra = dict(create() or {})
            extra.setdefault("build_seconds", round(time.perf_counter() - t0, 3))
            meta = self._write(kind, key, _module_tensors(modules), extra, parts)
            return meta, False

    # ---- plain tensors

    def load_tensors(
        self, kind: str, key: str
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """Return ``(tensors on CPU, sidecar meta)`` of an entry, or ``None`` on a miss."""
        return self._read(kind, key)

    def save_tensors(
        self,
        kind: str,
        key: str,
        tensors: Mapping[str, torch.Tensor],
        meta: Mapping[str, Any],
        *,
        parts: Mapping[str, Any] | None = None,
    ) -> Path:
        """Save named tensors (e.g. cached features) with a JSON sidecar, atomically.

        Tensors are copied to CPU; returns the ``.safetensors`` path.
        """
        flat: dict[str, torch.Tensor] = {}
        for name, t in tensors.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"tensor names must be non-empty strings, got {name!r}")
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"tensor '{name}' is a {type(t).__name__}, not a torch.Tensor")
            flat[name] = t.detach().to("cpu").contiguous().clone()
        self._write(kind, key, flat, meta, parts)
        return self.path(kind, key)


class CacheView(Cache):
    """The part of a :class:`Cache` that one owner (an attack) may use: its own entries.

    It has the whole :class:`Cache` interface (``get_or_create``, ``load_modules``,
    ``save_tensors``, ...) rooted at ``<cache root>/views/<owner>``. Build it with
    :meth:`Cache.view`.

    Example::

        view = Cache("runs/x/cache").view("attack-kedmi")
        meta, hit = view.get_or_create("gan", parts, {"generator": g}, create)
    """

    def __init__(self, cache: Cache, owner: str) -> None:
        _check_name(owner, "cache view owner")
        super().__init__(cache.root / "views" / owner)
        self.owner = owner

    def __repr__(self) -> str:
        return f"CacheView({self.owner!r})"

    def view(self, owner: str) -> CacheView:
        """Views do not nest: an owner gets one view, from the full cache."""
        raise TypeError("a cache view cannot hand out other views; use Cache.view")
