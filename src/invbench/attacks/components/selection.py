"""Restarts and selection: many starts per requested image, the best kept."""

from __future__ import annotations

import torch
from torch import Tensor

from invbench.errors import ConfigError, DataError


def expand_restarts(labels: Tensor, restarts: int) -> tuple[Tensor, Tensor]:
    """Repeat ``labels`` ``(B,)`` for ``restarts`` independent starts, restart-major.

    Returns ``(labels_rep, groups)``, both ``(restarts * B,)``: ``labels_rep[r * B + i] =
    labels[i]`` and ``groups[r * B + i] = i`` (the requested image each start belongs to),
    ready for one batched forward pass and for :func:`select_best`.

    Example::

        >>> expand_restarts(torch.tensor([3, 4]), 2)
        (tensor([3, 4, 3, 4]), tensor([0, 1, 0, 1]))
    """
    if restarts < 1:
        raise ConfigError(f"restarts must be >= 1, got {restarts}")
    n = labels.shape[0]
    groups = torch.arange(n, device=labels.device).repeat(restarts)
    return labels.repeat(restarts), groups


def select_best(scores: Tensor, groups: Tensor, *, k: int = 1) -> Tensor:
    """Indices of the ``k`` highest-scoring entries of every group.

    Arguments:
        scores: ``(N,)`` float, higher is better; NaN counts as worst.
        groups: ``(N,)`` int64 group ids in ``0..G-1`` (e.g. the requested image a restart
            belongs to; see :func:`expand_restarts`); every group needs ``>= k`` members.
        k: how many to keep per group.

    Returns:
        ``(G, k)`` int64 indices into ``scores``, row ``g`` for group ``g``, best first.
        Ties keep the lower index (the earlier restart).

    Example::

        >>> select_best(torch.tensor([0.1, 0.9, 0.8, 0.2]), torch.tensor([0, 1, 0, 1]))
        tensor([[2],
                [1]])
    """
    if scores.ndim != 1 or groups.shape != scores.shape:
        raise DataError(
            f"select_best: scores and groups must both be (N,), got {tuple(scores.shape)} "
            f"and {tuple(groups.shape)}"
        )
    if k < 1:
        raise ConfigError(f"select_best: k must be >= 1, got {k}")
    groups = groups.long()
    if groups.numel() == 0 or int(groups.min()) < 0:
        raise DataError("select_best: groups must be non-empty ids >= 0")
    counts = torch.bincount(groups)
    if int(counts.min()) < k:
        raise DataError(
            f"select_best: every group id 0..{counts.numel() - 1} needs >= {k} entries, "
            f"the smallest group has {int(counts.min())}"
        )
    clean = torch.nan_to_num(scores.float(), nan=float("-inf"))
    order = torch.argsort(clean, descending=True, stable=True)
    order = order[torch.argsort(groups[order], stable=True)]
    starts = torch.cumsum(counts, 0) - counts
    offsets = torch.arange(k, device=scores.device)
    return order[starts.view(-1, 1) + offsets.view(1, -1)]
