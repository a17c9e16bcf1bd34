"""The headline: a verified success, with a built-in check against false positives.

A reconstruction counts as a **success** when

1. the evaluator ensemble's majority vote (the robust evaluator included) gives it the
   attacked label, **and**
2. its distance to the nearest private *training* image of that class, in the robust
   evaluator's feature space, is at most the class's threshold: the ``quantile`` (default 95th
   percentile) of the same distance over a *calibration* half of the held-out private images of
   that class.

So a success looks like the class to evaluators of three families *and* sits as close to the
private data as real, unseen members of the class do. The other half of the held-out images is
the ``private_test`` reference, never judged by a threshold it set. Rates come with a 95%
Wilson score interval (Wilson, JASA 1927), since reconstructions are few.

Motivation: Ho et al., "Revisiting Model Inversion Evaluation" (2025,
https://arxiv.org/abs/2505.03519) show that standard evaluators accept adversarial
reconstructions as successes at false-positive rates up to 99%; robust features separate
noise from reconstructions where standard ones do not (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.errors import DataError
from invbench.metrics.base import Metric, MetricOutput
from invbench.metrics.ensemble import ensemble_votes, majority_hit
from invbench.metrics.knn import nearest_same_class_sq_dist
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.metrics.evaluator import Evaluator
    from invbench.types import Reconstruction


def wilson_interval(successes: int, n: int, *, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% by default).

    Example: ``wilson_interval(8, 10)`` -> ``(0.4902, 0.9433)`` (to 4 digits).
    """
    if n <= 0:
        raise DataError("a success rate needs at least one image")
    if not 0 <= successes <= n:
        raise DataError(f"successes must be in [0, {n}], got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends, no rounding residue
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def robust_distances(
    images: Tensor, labels: Tensor, ctx: EvalContext, *, feats: Tensor | None = None
) -> Tensor:
    """Squared L2 in robust-evaluator features to the nearest same-class private train image.

    ``feats``: the robust features of ``images`` when already computed.
    """
    robust: Evaluator = ctx.robust  # type: ignore[assignment]
    train_f, train_y = robust.private_features(ctx.protocol)
    if feats is None:
        feats = robust.features(images)
    return nearest_same_class_sq_dist(feats, labels.to(feats.device).long(), train_f, train_y).cpu()


def calibrate_thresholds(
    images: Tensor, labels: Tensor, ctx: EvalContext, *, num_classes: int, quantile: float
) -> Tensor:
    """Per-class ``quantile`` of :func:`robust_distances` of held-out images: (num_classes,).

    ``images``/``labels`` are the calibration half of the private test split. A class without
    calibration images gets threshold ``-inf`` (nothing can succeed on it) and is refused later.
    """
    d = robust_distances(images, labels, ctx)
    out = torch.full((num_classes,), float("-inf"), dtype=torch.float64)
    for c in range(num_classes):
        mask = labels.cpu() == c
        if bool(mask.any()):
            out[c] = torch.quantile(d[mask].double(), quantile)
    return out


@register_metric("success")
class VerifiedSuccess(Metric):
    """The headline ``success`` rate: ensemble majority vote AND close to the private class.

    Motivation: Ho et al., "Revisiting Model Inversion Evaluation", 2025; interval: Wilson,
    JASA 1927.

    See the module docstring for the definition. Returns ``success`` (fraction of
    reconstructions that succeed; higher = a stronger attack), ``success_lo``/``success_hi``
    (95% Wilson interval). Per image: ``img_success`` (0/1) and ``img_robust_dist`` (squared L2
    to the nearest same-class private training image in the robust evaluator's features).

    Feature space: the robust (adversarially trained) evaluator's penultimate features for the
    distance; every ensemble member's logits (with test-time augmentation) for the vote.

    Example::

        VerifiedSuccess().compute(recon, ctx)  # {"success": 0.4, "success_lo": 0.2, ...}
    """

    keys = ("success", "success_lo", "success_hi")
    requires = ("ensemble", "robust", "thresholds")
    rates = ("success",)

    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        labels = recon.labels.cpu().long()
        thresholds: Tensor = ctx.thresholds  # type: ignore[assignment]
        present = torch.unique(labels)
        if bool((thresholds[present] == float("-inf")).any()):
            missing = [int(c) for c in present if thresholds[c] == float("-inf")]
            raise DataError(
                f"classes {missing} have no calibration images; the success threshold is "
                "undefined (use a larger test_fraction or max_per_class)"
            )
        votes = ensemble_votes(recon, ctx, tta=ctx.tta)
        robust: Evaluator = ctx.robust  # type: ignore[assignment]
        feats = ctx.memoized("robust_features", lambda: robust.features(recon.images))
        dist = robust_distances(recon.images, labels, ctx, feats=feats)
        close = dist <= thresholds[labels]
        hit = majority_hit(votes, labels) & close
        k, n = int(hit.sum()), int(hit.numel())
        lo, hi = wilson_interval(k, n)
        return {
            "success": k / n,
            "success_lo": lo,
            "success_hi": hi,
            "img_success": hit.to(torch.uint8),
            "img_robust_dist": dist.float(),
        }
