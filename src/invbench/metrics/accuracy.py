"""Attack accuracy: does an independent evaluator recognise the reconstructed class?

The headline metric of model inversion since GMI (Zhang et al., CVPR 2020,
https://arxiv.org/abs/1911.07135), reported as in MIBench: the evaluation model classifies
every reconstruction; top-1 / top-k hits are averaged *per class* first, then over the
classes that were attacked (so every class weighs the same however many images it has),
with the standard deviation over classes alongside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.metrics.base import Metric, MetricOutput
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction


def per_class_mean_std(hits: Tensor, labels: Tensor) -> tuple[float, float]:
    """Mean and population std (ddof=0) over classes of the per-class mean of ``hits``.

    ``hits`` (N,) float in {0, 1}, ``labels`` (N,) int; only classes present in ``labels``
    count. Example: hits ``[1, 0, 1, 1]`` with labels ``[0, 0, 1, 1]`` -> per class
    ``[0.5, 1.0]`` -> ``(0.75, 0.25)``.
    """
    classes, inverse = torch.unique(labels, return_inverse=True)
    sums = torch.zeros(classes.numel(), dtype=torch.float64, device=hits.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, inverse, hits.double())
    counts.index_add_(0, inverse, torch.ones_like(hits, dtype=torch.float64))
    per_class = sums / counts
    return float(per_class.mean()), float(per_class.std(unbiased=False))


@register_metric("accuracy")
class AttackAccuracy(Metric):
    """Evaluator top-1 / top-5 accuracy of reconstructions, mean and std over classes.

    Paper: Zhang et al., "The Secret Revealer", CVPR 2020 (GMI's attack accuracy); reported
    per class as in MIBench (2024).

    Returns ``acc1``, ``acc5`` (top-k with ``k = min(5, num_classes)``), ``acc1_std`` and
    ``acc5_std``, all in [0, 1]. Per class ``c``: the fraction of reconstructions labelled
    ``c`` that the evaluator puts at rank 1 (top-k) for ``c``; then mean and population std
    (ddof=0) over the attacked classes.

    Feature space: the standard evaluator's logits (no test-time augmentation, as MIBench).
    Higher is better for the attacker. Per image it records the standard evaluator's label
    (``img_pred_<name>``).

    Example::

        AttackAccuracy().compute(recon, ctx)
        # {"acc1": 0.8, "acc5": 1.0, "acc1_std": 0.1, "acc5_std": 0.0}
    """

    keys = ("acc1", "acc5", "acc1_std", "acc5_std")
    rates = ("acc1", "acc5")

    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        protocol, evaluator = ctx.protocol, ctx.standard
        logits = evaluator.logits(recon.images)
        labels = recon.labels.to(logits.device).long()
        k = min(5, protocol.num_classes, logits.shape[1])
        topk = logits.topk(k, dim=1).indices  # (N, k)
        match = topk == labels[:, None]
        top1 = match[:, 0].float()
        topk_hit = match.any(dim=1).float()
        acc1, acc1_std = per_class_mean_std(top1, labels)
        acc5, acc5_std = per_class_mean_std(topk_hit, labels)
        return {
            "acc1": acc1,
            "acc5": acc5,
            "acc1_std": acc1_std,
            "acc5_std": acc5_std,
            f"img_pred_{evaluator.name}": topk[:, 0],
        }
