"""FID and KID between reconstructions and the private data, in robust-evaluator features.

* **FID** — Heusel, Ramsauer, Unterthiner, Nessler, Hochreiter, "GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017
  (https://arxiv.org/abs/1706.08500): the Fréchet distance between Gaussians fitted to two
  feature sets, ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})``.
* **KID** — Bińkowski, Sutherland, Arbel, Gretton, "Demystifying MMD GANs", ICLR 2018
  (https://arxiv.org/abs/1801.01401): the unbiased estimator of the squared MMD with the
  cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3``. Unlike FID it is unbiased, so it is
  meaningful for small sets; it may be slightly negative when the sets match.

MIBench reports both between reconstructions and the private images of the attacked classes.
Here they are measured in the **robust** evaluator's penultimate features (the only features
that separated noise from reconstructions in the measurements of issue 6), not Inception's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.errors import DataError
from invbench.metrics._features import robust_feature_sets
from invbench.metrics.base import Metric, MetricOutput
from invbench.metrics.evaluator import derive_seed
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction

#: seed of the generator that draws KID's subsets when a set exceeds ``subset_size``
KID_SEED = derive_seed(0, "kid-subsets")


def _as_features(a: Tensor, b: Tensor, *, what: str, min_rows: int) -> tuple[Tensor, Tensor]:
    for name, t in (("first", a), ("second", b)):
        if not isinstance(t, Tensor) or t.ndim != 2:
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise DataError(f"{what}: the {name} feature set must be a (N, D) tensor, got {got}")
        if t.shape[0] < min_rows:
            raise DataError(
                f"{what}: the {name} feature set has {t.shape[0]} rows; at least {min_rows} needed"
            )
    if a.shape[1] != b.shape[1]:
        raise DataError(f"{what}: feature dimensions differ ({a.shape[1]} vs {b.shape[1]})")
    # float64 on the CPU: exact enough for eigen-decompositions, and works for every device
    return a.detach().double().cpu(), b.detach().double().cpu()


def _psd_sqrt(s: Tensor) -> Tensor:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues -> 0)."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al., 2017).

    ``||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a S_b)^{1/2})``, with the sample means
    and the unbiased sample covariances (``N - 1``) of ``a`` (N, D) and ``b`` (M, D), in
    float64. ``Tr((S_a S_b)^{1/2})`` is computed as the sum of the square roots of the
    eigenvalues of the symmetric ``S_a^{1/2} S_b S_a^{1/2}`` (same spectrum as ``S_a S_b``),
    tiny negative eigenvalues from round-off clamped to 0; the result is clamped at 0.
    Lower = closer distributions; 0 for identical sets. Needs N, M >= 2; with fewer rows
    than dimensions the covariances are singular and the value is unreliable (the ``fid``
    metric then reports ``None``).

    Example::

        frechet_distance(torch.randn(500, 8), torch.randn(500, 8) + 1)   # about 8 (= ||dmu||^2)
    """
    x, y = _as_features(a, b, what="frechet_distance", min_rows=2)
    mu_x, mu_y = x.mean(0), y.mean(0)
    s_x, s_y = torch.cov(x.T).reshape(x.shape[1], -1), torch.cov(y.T).reshape(y.shape[1], -1)
    root = _psd_sqrt(s_x)
    middle = root @ s_y @ root
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    fid = (mu_x - mu_y).square().sum() + s_x.trace() + s_y.trace() - 2 * tr_sqrt
    return max(float(fid), 0.0)


def _mmd2_unbiased(x: Tensor, y: Tensor) -> Tensor:
    d = x.shape[1]
    m, n = x.shape[0], y.shape[0]
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return xx + yy - 2 * k_xy.mean()


def kernel_inception_distance(
    a: Tensor,
    b: Tensor,
    *,
    subset_size: int = 1000,
    n_subsets: int = 100,
    seed: int = KID_SEED,
) -> float:
    """KID: unbiased squared MMD with the cubic polynomial kernel (Bińkowski et al., 2018).

    ``k(x, y) = (x.y / D + 1)^3`` and, for ``a`` (m, D) and ``b`` (n, D)::

        MMD^2_u = sum_{i != j} k(a_i, a_j) / (m (m-1)) + sum_{i != j} k(b_i, b_j) / (n (n-1))
                  - 2 sum_{i, j} k(a_i, b_j) / (m n)

    in float64. When both sets have at most ``subset_size`` rows it is computed once on all
    of them; otherwise it is the mean over ``n_subsets`` pairs of random subsets of
    ``min(subset_size, m)`` and ``min(subset_size, n)`` rows (without replacement within a
    subset; torch-fidelity's defaults 1000 and 100), drawn by a generator seeded with
    ``seed``. Lower = closer distributions; its expectation is 0 for two samples of the same
    distribution, so it can come out slightly negative. Needs m, n >= 2.

    Example::

        kernel_inception_distance(torch.randn(200, 8), torch.randn(200, 8))   # about 0
    """
    x, y = _as_features(a, b, what="kernel_inception_distance", min_rows=2)
    if subset_size < 2 or n_subsets < 1:
        raise DataError(
            f"kernel_inception_distance: subset_size must be >= 2 and n_subsets >= 1, got "
            f"{subset_size} and {n_subsets}"
        )
    m, n = x.shape[0], y.shape[0]
    if max(m, n) <= subset_size:
        return float(_mmd2_unbiased(x, y))
    gen = torch.Generator().manual_seed(int(seed))
    total = torch.zeros((), dtype=torch.float64)
    for _ in range(int(n_subsets)):
        ix = torch.randperm(m, generator=gen)[: min(subset_size, m)]
        iy = torch.randperm(n, generator=gen)[: min(subset_size, n)]
        total += _mmd2_unbiased(x[ix], y[iy])
    return float(total / n_subsets)


@register_metric("fid")
class FidKid(Metric):
    """FID and KID of reconstructions against the private data, in robust-evaluator features.

    Feature space: the penultimate features of the **robust** (adversarially trained)
    evaluator, ``ctx.robust``. Reals: the private *training* images of the classes present
    in ``recon.labels``, subsampled class-balanced to the reconstructions' class counts
    (:func:`~invbench.metrics._features.balanced_real_index`: fixed seed, without
    replacement; a class with fewer training images than reconstructions contributes all of
    them), the same reals as the ``prdc`` metric.

    Returns:
        * ``fid`` — :func:`frechet_distance` (Heusel et al., NeurIPS 2017); ``None`` when the
          smaller set has fewer rows than the feature dimension D (singular covariances:
          MIBench's FID is not defined there) or fewer than 2.
        * ``kid`` — :func:`kernel_inception_distance` (Bińkowski et al., ICLR 2018), unbiased,
          so reported for small sets too; ``None`` with fewer than 2 per set.
        * ``n_fid`` — the sample size they were computed on: the number of reconstructions N
          (= the number of reals, unless a class ran short of reals: then the smaller size).

    Lower ``fid`` / ``kid`` = reconstructions distributed more like the private data (better
    for the attacker). Not on a universal scale: they depend on the feature space (compare
    rows judged by the same robust evaluator) and FID is biased upward for small N.

    Example::

        evaluate(recon, ctx, metrics=["fid"])   # {"fid": 12.3, "kid": 0.41, "n_fid": 100.0}
    """

    requires = ("robust",)
    rates = ()
    keys = ("fid", "kid", "n_fid")

    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        fake, real = robust_feature_sets(recon, ctx)
        n = min(fake.shape[0], real.shape[0])
        dim = fake.shape[1]
        return {
            "fid": frechet_distance(fake, real) if n >= max(dim, 2) else None,
            "kid": kernel_inception_distance(fake, real) if n >= 2 else None,
            "n_fid": float(n),
        }
