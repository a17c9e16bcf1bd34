"""Name -> class registries with ``register_*`` decorators, and the plugin entry points.

The CLI's ``list`` command, the config validator and the conformance tests all read these,
so a method exists for every part of the system the moment it is registered.

The first lookup (``get``, ``names``, ``items``, ``in``) imports the built-in packages
(:data:`BUILTIN_PACKAGES`), whose modules register themselves with the decorators, and then
loads every third-party plugin. If a built-in module fails to import (a syntax or import
error in ``invbench.attacks.gmi``, say), that original exception is raised again by every
later lookup, never hidden behind "unknown attack 'gmi'" or a shorter list of methods.

Third-party methods: a package declares an entry point in the group ``invbench.methods``
(:data:`ENTRY_POINT_GROUP`) in its ``pyproject.toml``::

    [project.entry-points."invbench.methods"]
    myattack = "mypkg.attacks"

The entry point names a module (imported: its ``@register_attack`` / ``@register_defense``
/ ``@register_metric`` / ``@register_dataset`` decorators run) or a callable such as
``"mypkg.plugin:register"`` (imported, then called with no arguments; it registers through
the same decorators). A class is imported and not called. Its methods then appear in
``invbench list``, the CLI and YAML specs like built-ins. A plugin that fails to load (or
registers a name that is taken) makes every lookup raise a one-line
:class:`~invbench.errors.ConfigError` naming the entry point and the error.

Example::

    from invbench.registry import ATTACKS, register_attack

    @register_attack("my-attack")
    class MyAttack(Attack): ...

    ATTACKS.get("my-attack") is MyAttack  # True
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from importlib import import_module, metadata
from types import TracebackType
from typing import Generic, TypeVar

from invbench.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of classes or factories of one kind (``"attack"``, ``"dataset"``...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register the decorated class or function under ``name``."""
        def deco(obj: T) -> T:
            if name in self._items:
                raise RuntimeError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):  # functions and builtins
                pass
            return obj

        return deco

    def get(self, name: str) -> T:
        """The entry called ``name``, or a one-line ConfigError listing the names."""
        _load_builtins()
        try:
            return self._items[name]
        except KeyError:
            allowed = ", ".join(sorted(self._items)) or "(none registered)"
            raise ConfigError(f"unknown {self.kind} '{name}'; choose one of: {allowed}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        _load_builtins()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        _load_builtins()
        yield from sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        _load_builtins()
        return name in self._items


def summary(obj: object) -> str:
    """First line of an object's docstring, for ``invbench list``."""
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


DATASETS: Registry = Registry("dataset")
ATTACKS: Registry = Registry("attack")
DEFENSES: Registry = Registry("defense")
METRICS: Registry = Registry("metric")
OUTPUTS: Registry = Registry("output")

register_dataset = DATASETS.register
register_attack = ATTACKS.register
register_defense = DEFENSES.register
register_metric = METRICS.register
register_output = OUTPUTS.register

#: packages whose modules register the built-in methods, imported on the first lookup
BUILTIN_PACKAGES: tuple[str, ...] = (
    "invbench.attacks",
    "invbench.data",
    "invbench.defenses",
    "invbench.metrics",
)
#: the entry-point group third-party packages use to register methods
ENTRY_POINT_GROUP = "invbench.methods"

#: "idle" (nothing imported yet), "loading" (an import is under way), "done" or "failed"
_state = "idle"
#: the exception (and its original traceback) that made loading fail; re-raised by lookups
_failure: tuple[BaseException, TracebackType | None] | None = None


def _reset() -> None:
    """Forget what was loaded so the next lookup loads again (for tests)."""
    global _state, _failure
    _state, _failure = "idle", None


def _plugin_entry_points() -> list[metadata.EntryPoint]:
    """The installed entry points of :data:`ENTRY_POINT_GROUP`, sorted by name."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _load_plugin(ep: metadata.EntryPoint) -> None:
    """Load one entry point: import its module or object; call it if it is a plain callable."""
    try:
        obj = ep.load()
        if not inspect.ismodule(obj) and not inspect.isclass(obj):
            if not callable(obj):
                raise TypeError(f"{type(obj).__name__} object is neither a module nor callable")
            obj()
    except Exception as exc:  # any error of third-party code becomes one line
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ConfigError(
            f"plugin '{ep.name}' ({ep.value}) of entry-point group '{ENTRY_POINT_GROUP}' "
            f"failed to load: {detail}"
        ) from exc


def _load_builtins() -> None:
    """Import the built-in packages and the plugins once; re-raise a failure on every call."""
    global _state, _failure
    if _state == "failed" and _failure is not None:
        exc, tb = _failure
        raise exc.with_traceback(tb)
    if _state != "idle":  # "done", or a lookup made while a registering module is imported
        return
    _state = "loading"
    try:
        for package in BUILTIN_PACKAGES:
            import_module(package)
        for ep in _plugin_entry_points():
            _load_plugin(ep)
    except Exception as exc:
        _state, _failure = "failed", (exc, exc.__traceback__)
        raise
    except BaseException:  # KeyboardInterrupt and the like: try again on the next lookup
        _state = "idle"
        raise
    _state = "done"
