"""Shared chores of the distribution metrics (``fid``, ``prdc``): which reals they compare with.

FID, KID and PRDC compare the set of reconstructions with a set of *real* private images of
the same size and class mix. :func:`balanced_real_index` picks those reals once, the same way
for every metric: for each attacked class, as many private *training* images of that class
as there are reconstructions of it, drawn without replacement by a generator with a fixed
seed (``derive_seed(0, "fid-reals")``), so two metrics — and two runs — see the same reals.
:func:`robust_feature_sets` returns both sets in the robust evaluator's feature space.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.errors import ConfigError, DataError
from invbench.metrics.evaluator import derive_seed

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction

#: seed of the generator that subsamples the reals (fixed: independent of the run's seed)
REALS_SEED = derive_seed(0, "fid-reals")


def balanced_real_index(
    recon_labels: Tensor, real_labels: Tensor, *, seed: int = REALS_SEED
) -> Tensor:
    """Indices of a class-balanced subsample of the reals, matching the reconstructions' labels.

    For each class ``c`` present in ``recon_labels`` (``n_c`` reconstructions), ``n_c`` of the
    reals labelled ``c``, drawn without replacement by a CPU ``torch.Generator`` seeded with
    ``seed``. A class with fewer reals than reconstructions contributes *all* its reals
    (never duplicates: a repeated real would give zero nearest-neighbour radii in PRDC and a
    shrunken covariance in FID), so the real set is then smaller than the reconstruction set.

    Args:
        recon_labels: (N,) int, the reconstructions' labels.
        real_labels: (M,) int, the labels of the candidate reals (e.g. ``private_train.y``).
        seed: the generator's seed (default: :data:`REALS_SEED`).

    Returns:
        (K,) int64 indices into ``real_labels`` on the CPU, grouped by class in ascending
        class order; ``K = sum_c min(n_c, M_c)``. Raises :class:`DataError` when an attacked
        class has no reals.

    Example: ``recon_labels = [0, 0, 1]``, ``real_labels = [0, 1, 0, 0, 1]`` -> two of the
    indices ``{0, 2, 3}`` then one of ``{1, 4}``.
    """
    rec = recon_labels.detach().long().cpu()
    real = real_labels.detach().long().cpu()
    gen = torch.Generator().manual_seed(int(seed))
    classes, counts = torch.unique(rec, return_counts=True)
    out = []
    for c, n in zip(classes.tolist(), counts.tolist(), strict=True):
        pool = (real == c).nonzero().flatten()
        if pool.numel() == 0:
            raise DataError(
                f"class {c} has no private training images to compare reconstructions with"
            )
        out.append(pool[torch.randperm(pool.numel(), generator=gen)[:n]])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def robust_feature_sets(recon: Reconstruction, ctx: EvalContext) -> tuple[Tensor, Tensor]:
    """Reconstructions and their balanced reals (:func:`balanced_real_index`) in robust features.

    Returns ``(fake, real)``: ``(N, D)`` features of ``recon.images`` and ``(K, D)`` features
    of the subsampled private training images, both float32 on the robust evaluator's device.
    The private features come from :meth:`Evaluator.private_features` (computed once per
    evaluator and cached).

    Example::

        fake, real = robust_feature_sets(recon, ctx)   # ctx.robust must be set
    """
    ev = ctx.robust
    if ev is None:
        raise ConfigError(
            "these metrics need the evaluation context's robust evaluator; ctx.robust is None"
        )
    real_feats, real_labels = ev.private_features(ctx.protocol)
    idx = balanced_real_index(recon.labels, real_labels)
    fake = ctx.memoized("robust_features", lambda: ev.features(recon.images))
    return fake, real_feats[idx.to(real_feats.device)]
