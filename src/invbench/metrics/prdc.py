"""Precision, recall, density and coverage of reconstructions, in robust-evaluator features.

Naeem, Oh, Uh, Choi, Yoo, "Reliable Fidelity and Diversity Metrics for Generative Models",
ICML 2020 (https://arxiv.org/abs/2002.09797), with k = 3 nearest neighbours and Euclidean
distances, as MIBench reports them. Each real point ``X_i`` gets the radius ``r_i`` of its
k-th nearest real neighbour (itself excluded), each fake point ``Y_j`` the radius ``s_j`` of
its k-th nearest fake neighbour; with N reals and M fakes::

    precision = 1/M  sum_j  1[ exists i: ||Y_j - X_i|| < r_i ]     fakes inside the real manifold
    recall    = 1/N  sum_i  1[ exists j: ||X_i - Y_j|| < s_j ]     reals inside the fake manifold
    density   = 1/(kM) sum_j sum_i 1[ ||Y_j - X_i|| < r_i ]        how many real balls hold a fake
    coverage  = 1/N  sum_i  1[ min_j ||X_i - Y_j|| < r_i ]         real balls holding any fake

Comparisons are strict (``<``), as in the authors' reference code, so identical clouds give
precision = recall = coverage = 1 and density = 1 (no ties).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from invbench.errors import DataError
from invbench.metrics._features import robust_feature_sets
from invbench.metrics.base import Metric, MetricOutput
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction


def _pairwise(a: Tensor, b: Tensor) -> Tensor:
    return torch.cdist(a[None], b[None], compute_mode="donot_use_mm_for_euclid_dist")[0]


def _kth_radius(points: Tensor, k: int) -> Tensor:
    """Distance of each point to its k-th nearest other point (self at distance 0 excluded)."""
    return _pairwise(points, points).kthvalue(k + 1, dim=1).values


def prdc(real: Tensor, fake: Tensor, *, k: int = 3) -> dict[str, float | None]:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (Naeem et al., 2020).

    Args:
        real: (N, D) features of real samples.
        fake: (M, D) features of generated samples (reconstructions).
        k: the nearest-neighbour rank of the radii (paper and MIBench: 3).

    Returns:
        ``{"precision", "recall", "density", "coverage"}`` (see the module docstring for the
        formulas; float64 Euclidean distances on the CPU, strict comparisons). ``precision``,
        ``density`` and ``coverage`` need the real radii: ``None`` when N < k + 1; ``recall``
        needs the fake radii: ``None`` when M < k + 1. Precision, recall and coverage lie in
        [0, 1], density in [0, N/k]; higher = fakes more faithful (precision, density) and
        more diverse (recall, coverage).

    Example::

        pts = torch.randn(50, 4)
        prdc(pts, pts)   # {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}
    """
    if k < 1:
        raise DataError(f"prdc: k must be >= 1, got {k}")
    for name, t in (("real", real), ("fake", fake)):
        if not isinstance(t, Tensor) or t.ndim != 2:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise DataError(f"prdc: {name} must be a (N, D) tensor, got {got}")
    if real.shape[1] != fake.shape[1]:
        raise DataError(f"prdc: feature dimensions differ ({real.shape[1]} vs {fake.shape[1]})")
    x, y = real.detach().double().cpu(), fake.detach().double().cpu()
    n, m = x.shape[0], y.shape[0]
    out: dict[str, float | None] = dict.fromkeys(("precision", "recall", "density", "coverage"))
    if n == 0 or m == 0:
        return out
    d_xy = _pairwise(x, y)  # (N, M)
    if n >= k + 1:
        inside = d_xy < _kth_radius(x, k)[:, None]  # fake j inside real ball i
        out["precision"] = float(inside.any(dim=0).double().mean())
        out["density"] = float(inside.sum(dim=0).double().mean() / k)
        out["coverage"] = float(inside.any(dim=1).double().mean())
    if m >= k + 1:
        covered = d_xy < _kth_radius(y, k)[None, :]  # real i inside fake ball j
        out["recall"] = float(covered.any(dim=1).double().mean())
    return out


@register_metric("prdc")
class Prdc(Metric):
    """Precision, recall, density, coverage (Naeem et al., ICML 2020; k = 3), robust features.

    Feature space: the penultimate features of the **robust** evaluator, ``ctx.robust``.
    Reals: exactly the reals of the ``fid`` metric (private training images of the attacked
    classes, subsampled class-balanced to the reconstructions' counts with a fixed seed:
    :func:`~invbench.metrics._features.balanced_real_index`). Computed by :func:`prdc`.

    Returns ``precision`` (fraction of reconstructions inside the real data's k-NN
    manifold), ``recall`` (fraction of reals inside the reconstructions' manifold),
    ``density`` (average number of real k-NN balls holding a reconstruction, divided by k;
    about 1 when the sets match, larger when reconstructions crowd dense real regions) and
    ``coverage`` (fraction of real balls holding a reconstruction). Higher = better for the
    attacker (precision/density: fidelity; recall/coverage: diversity). ``None`` when a set
    has fewer than k + 1 = 4 points.

    Example::

        evaluate(recon, ctx, metrics=["prdc"])
        # {"precision": 0.9, "recall": 0.4, "density": 0.8, "coverage": 0.5}
    """

    requires = ("robust",)
    rates = ()
    keys = ("precision", "recall", "density", "coverage")
    #: nearest-neighbour rank (Naeem et al. and MIBench use 3)
    k: ClassVar[int] = 3

    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        fake, real = robust_feature_sets(recon, ctx)
        return dict(prdc(real, fake, k=self.k))
