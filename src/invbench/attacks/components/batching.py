"""Chunking: labels x per_label x restarts processed in batches of bounded size."""

from __future__ import annotations

from invbench.errors import ConfigError


def chunked(n: int, batch_size: int | None = None) -> list[slice]:
    """Consecutive slices covering ``range(n)``, each at most ``batch_size`` long.

    ``batch_size=None`` (or one >= ``n``) gives one slice over everything. Attacks whose
    losses are per sample get the same numbers whatever the chunking; an attack whose loss
    couples a batch (DeepInversion's BatchNorm statistics) documents that it depends on it.

    Example::

        >>> chunked(5, 2)
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
        >>> chunked(5)
        [slice(0, 5, None)]
    """
    if int(n) < 0:
        raise ConfigError(f"chunked: n must be >= 0, got {n}")
    n = int(n)
    if batch_size is None:
        return [slice(0, n)]
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1 (or None for one batch), got {batch_size}")
    b = int(batch_size)
    return [slice(i, min(i + b, n)) for i in range(0, n, b)] or [slice(0, 0)]
