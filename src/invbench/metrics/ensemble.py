"""The evaluator ensemble: each member's accuracy, the majority vote and the agreement.

One evaluator can be fooled by adversarial features that transfer from the target (Ho et al.,
"Revisiting Model Inversion Evaluation", 2025, https://arxiv.org/abs/2505.03519, measure
false-positive rates up to 99%). An ensemble of evaluators of *different architecture
families*, one of them adversarially trained (the robust evaluator), each judging with
test-time augmentation (small shifts), is much harder to fool: a false positive must transfer
to all of them at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.metrics.accuracy import per_class_mean_std
from invbench.metrics.base import Metric, MetricOutput
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction


def ensemble_votes(recon: Reconstruction, ctx: EvalContext, *, tta: bool = True) -> Tensor:
    """Each member's label for each image: (M, N) int64 on the CPU (members in ``ctx`` order)."""

    def votes() -> Tensor:
        return torch.stack([ev.predict(recon.images, tta=tta).cpu().long() for ev in ctx.ensemble])

    return ctx.memoized(f"ensemble_votes(tta={tta})", votes)


def majority_hit(votes: Tensor, labels: Tensor) -> Tensor:
    """(N,) bool: more than half of the members give the image its attacked label.

    Example: votes ``[[0, 1], [0, 2], [3, 1]]`` (3 members, 2 images), labels ``[0, 1]``
    -> ``[True, True]`` (2 of 3 each).
    """
    m = votes.shape[0]
    return (votes == labels[None, :]).sum(dim=0) * 2 > m


@register_metric("ensemble")
class EnsembleAccuracy(Metric):
    """Each evaluator's top-1 accuracy, the ensemble's majority-vote accuracy and agreement.

    Motivation: Ho et al., "Revisiting Model Inversion Evaluation", 2025 (evaluator false
    positives transfer across single evaluators).

    Returns ``acc1_<name>`` for every member of ``ctx.ensemble`` (e.g. ``acc1_resnet``,
    ``acc1_vit``, ``acc1_robust``), ``ensemble_acc1`` (a reconstruction counts when more than
    half of the members give its label: 3 of the default 4) and ``agreement`` (the fraction of
    images on which every member gives the same label, whatever it is). Accuracies are
    averaged per class first, as ``acc1``. Higher is better for the attacker, but only
    ``success`` says whether the images are close to the private data.

    Feature space: each member's logits, with test-time augmentation when the context's
    members are asked for it (``tta``: identity and 1-px shifts, softmax averaged).
    Per image: ``img_vote_<name>`` (each member's label).

    Example::

        EnsembleAccuracy().compute(recon, ctx)
        # {"acc1_resnet": 0.9, "acc1_vit": 0.8, "acc1_robust": 0.4, "ensemble_acc1": 0.6, ...}
    """

    keys = ("acc1_*", "ensemble_acc1", "agreement")
    requires = ("ensemble",)
    rates = ("acc1_*", "ensemble_acc1")

    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        votes = ensemble_votes(recon, ctx, tta=ctx.tta)
        labels = recon.labels.cpu().long()
        out: MetricOutput = {}
        for ev, v in zip(ctx.ensemble, votes, strict=True):
            out[f"acc1_{ev.name}"] = per_class_mean_std((v == labels).float(), labels)[0]
            out[f"img_vote_{ev.name}"] = v
        out["ensemble_acc1"] = per_class_mean_std(majority_hit(votes, labels).float(), labels)[0]
        out["agreement"] = float((votes == votes[:1]).all(dim=0).float().mean())
        return out
