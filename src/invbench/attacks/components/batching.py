"""Chunking: labels x per_label x restarts processed in batches of bounded size."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.errors import ConfigError

if TYPE_CHECKING:
    from invbench.access import Access

#: images per target query when an attack labels a whole set (public data, prior samples)
QUERY_CHUNK = 256


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


def query_probs(access: Access, x: Tensor, *, batch_size: int = QUERY_CHUNK) -> Tensor:
    """The target's probability vectors ``(N, K)`` (float32, no graph) for images ``x``.

    Queried through ``access.predict_proba`` in chunks of ``batch_size`` on the access's
    device, so every image is one counted query (KEDMI's soft labels, LOMMA's distillation
    targets).
    """
    dev = access.device
    return torch.cat([
        access.predict_proba(x[s].to(dev)).float() for s in chunked(len(x), batch_size)
    ])


def generate(generator: torch.nn.Module, z: Tensor, *args: Tensor) -> Tensor:
    """``generator(z, *args)`` in chunks of :data:`QUERY_CHUNK` rows, without a graph."""
    with torch.inference_mode():
        return torch.cat([
            generator(z[s], *(a[s] for a in args)) for s in chunked(z.shape[0], QUERY_CHUNK)
        ])


def label_counts(labels: Tensor) -> dict[int, int]:
    """How many images each label of a request asks for, ``{label: count}`` (sorted)."""
    return {int(v): int((labels == v).sum()) for v in labels.unique().tolist()}


def assemble_by_label(labels: Tensor, results: dict[int, tuple[Tensor, Tensor]]
                      ) -> tuple[Tensor, Tensor]:
    """Rows and scores in the order of ``labels`` from per-label searches.

    ``results[y]`` holds ``(rows, scores)`` ranked best first, at least as many as ``y``
    occurs in ``labels``; the ``i``-th occurrence of ``y`` gets the ``i``-th row.
    """
    seen: dict[int, int] = {}
    picks: list[tuple[int, int]] = []
    for v in labels.tolist():
        k = seen.get(v, 0)
        seen[v] = k + 1
        picks.append((v, k))
    rows = torch.stack([results[v][0][k] for v, k in picks])
    scores = torch.stack([results[v][1][k] for v, k in picks])
    return rows, scores
