"""Restarts and selection: many starts per requested image, the best kept.

The stage-named wrappers (:func:`initial_selection`, :func:`final_selection`) and the score
PPA selects by (:func:`confidence_under_augmentation`) live here too.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from invbench.attacks.components.batching import chunked
from invbench.attacks.components.losses import target_confidence
from invbench.data.augment import Augment
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


def _check_candidates(candidates: Tensor, scores: Tensor, what: str) -> None:
    if candidates.ndim < 1 or candidates.shape[0] != scores.shape[0]:
        raise DataError(
            f"{what}: candidates must have one row per score, got {tuple(candidates.shape)} "
            f"for {tuple(scores.shape)} scores"
        )


def initial_selection(
    candidates: Tensor, scores: Tensor, groups: Tensor, k: int = 1
) -> Tensor:
    """Which starting candidates to optimise: the ``k`` best-scoring per group.

    PPA's initial selection (Struppek et al., ICML 2022, https://arxiv.org/abs/2201.12179)
    draws many latents, scores their images by the target's confidence in the label and
    keeps the best few per label. ``candidates`` ``(M, ...)`` are the latents or images,
    ``scores`` ``(M,)`` (higher is better) and ``groups`` ``(M,)`` the label/image each
    belongs to. Returns ``(G, k)`` indices into ``candidates`` (see :func:`select_best`);
    ``candidates[idx.flatten()]`` gathers them.

    Example::

        >>> z = torch.randn(4, 3)
        >>> initial_selection(z, torch.tensor([0.1, 0.9, 0.8, 0.2]), torch.tensor([0, 0, 1, 1]))
        tensor([[1],
                [2]])
    """
    _check_candidates(candidates, scores, "initial_selection")
    return select_best(scores, groups, k=k)


def final_selection(
    candidates: Tensor, scores: Tensor, groups: Tensor, k: int = 1
) -> Tensor:
    """Which optimised candidates to return: the ``k`` best-scoring per group.

    The final stage of an attack (PPA scores with :func:`confidence_under_augmentation`,
    GMI/KEDMI with the plain target confidence). Same contract as :func:`initial_selection`.
    """
    _check_candidates(candidates, scores, "final_selection")
    return select_best(scores, groups, k=k)


def confidence_under_augmentation(
    logits_fn: Callable[[Tensor], Tensor],
    images: Tensor,
    labels: Tensor,
    *,
    augment: Augment,
    views: int,
    generator: torch.Generator,
    batch_size: int | None = None,
) -> Tensor:
    """Mean softmax probability of each image's label over augmented views of it.

    PPA's final selection: an image that fools the target only at its exact pixels scores
    lower than one the target recognises under crops and flips. The views are the image
    itself plus ``views`` augmented copies (``augment`` drawn with ``generator``); with
    ``views=0`` this is ``target_confidence(logits_fn(images), labels)``.

    Arguments:
        logits_fn: images ``(B, C, H, W)`` -> logits ``(B, K)``, e.g. ``access.logits``
            (each view is one query).
        images: ``(N, C, H, W)``; labels: ``(N,)`` int64.
        augment: an :class:`~invbench.data.augment.Augment`.
        views: number of augmented copies, >= 0.
        generator: draws the augmentations.
        batch_size: forward at most this many images at once (``None``: all views at once).

    Returns:
        ``(N,)`` in [0, 1]. Differentiable unless called under ``torch.inference_mode()``
        (as selection normally is).
    """
    if int(views) < 0:
        raise ConfigError(f"confidence_under_augmentation: views must be >= 0, got {views}")
    if images.ndim != 4 or labels.shape != (images.shape[0],):
        raise DataError(
            f"confidence_under_augmentation: images must be (N, C, H, W) with labels (N,), "
            f"got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    n = images.shape[0]
    stack = [images] + [augment(images, generator=generator) for _ in range(int(views))]
    batch = torch.cat(stack)
    lab = labels.repeat(len(stack))
    conf = torch.cat([target_confidence(logits_fn(batch[s]), lab[s])
                      for s in chunked(batch.shape[0], batch_size)])
    return conf.view(len(stack), n).mean(0)
