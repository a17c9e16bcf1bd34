"""Name -> class registries with ``register_*`` decorators.

The CLI's ``list`` command, the config validator and the conformance tests all read these,
so a method exists for every part of the system the moment it is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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

register_dataset = DATASETS.register
register_attack = ATTACKS.register
register_defense = DEFENSES.register
register_metric = METRICS.register

_loaded = False


def _load_builtins() -> None:
    """Import the packages whose modules register the built-in methods (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import invbench.attacks  # noqa: F401
    import invbench.data  # noqa: F401
    import invbench.defenses  # noqa: F401
    import invbench.metrics  # noqa: F401
