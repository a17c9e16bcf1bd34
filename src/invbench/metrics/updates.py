"""Scores of an attack on a model's updates (Updates-Leak), against the true update sets.

An update attack (:class:`~invbench.attacks.base.UpdateAttack`) infers, for every update of
a deployed model, the label distribution of its update set and, for single-sample updates,
an image of the sample. Unlike a class-level inversion it has a ground truth per row, so it
is scored against it:

* ``label_acc`` — the inferred distribution's top label is the update set's most frequent
  label (for one sample: its label), the measure of Salem et al.'s label attacks;
* ``label_kl`` — KL(true || inferred) in nats, summed over classes, averaged over updates
  (the inferred distribution is floored at 1e-6 and renormalised so a zero never gives an
  infinite score); ``label_l1`` — the L1 distance of the two distributions (in [0, 2]);
* for reconstructed samples: ``update_mse`` (pixel MSE), ``update_ssim``
  (:func:`~invbench.metrics.pixel.ssim`) and ``update_agreement`` — the standard
  evaluator labels the reconstruction as the true sample's label.

:func:`update_baseline` scores what an attacker knows without a single query — the uniform
distribution over the attacked labels and the mean public image — by the same function, so
every number has its chance level next to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from invbench.errors import DataError
from invbench.metrics.pixel import ssim
from invbench.types import UpdateInference

if TYPE_CHECKING:
    from invbench.metrics.evaluator import Evaluator

__all__ = ["update_baseline", "update_scores"]

#: floor of inferred probabilities in ``label_kl``
KL_FLOOR = 1e-6


def update_scores(
    inferred: UpdateInference,
    *,
    true_dist: Tensor,
    true_images: Tensor | None = None,
    evaluator: Evaluator | None = None,
) -> dict[str, float]:
    """Score ``inferred`` against the true label distributions (and samples); see module.

    Args:
        inferred: the attack's output, one row per update.
        true_dist: (N, K) the true label distribution of each update set.
        true_images: (N, C, H, W) the true sample of each single-sample update, or ``None``.
        evaluator: the standard evaluator (``update_agreement``), or ``None``.

    Example: a perfect inference of two one-sample updates scores ``label_acc`` 1,
    ``label_kl`` ~0, ``label_l1`` 0, ``update_mse`` 0, ``update_ssim`` 1.
    """
    pred = inferred.label_dist.double()
    true = true_dist.double().to(pred.device)
    if pred.shape != true.shape:
        raise DataError(f"update scores: inferred distributions {tuple(pred.shape)} but true "
                        f"ones {tuple(true.shape)}")
    floored = pred.clamp_min(KL_FLOOR)
    floored = floored / floored.sum(dim=1, keepdim=True)
    terms = torch.where(true > 0, true * (true.clamp_min(1e-300).log() - floored.log()),
                        torch.zeros_like(true))
    out = {
        "label_acc": float((pred.argmax(1) == true.argmax(1)).double().mean()),
        "label_kl": float(terms.sum(1).mean()),
        "label_l1": float((pred - true).abs().sum(1).mean()),
    }
    if inferred.images is not None and true_images is not None:
        rec, real = inferred.images.float(), true_images.float().to(inferred.images.device)
        if rec.shape != real.shape:
            raise DataError(f"update scores: reconstructions {tuple(rec.shape)} but true "
                            f"samples {tuple(real.shape)}")
        out["update_mse"] = float((rec - real).square().flatten(1).mean(1).mean())
        out["update_ssim"] = float(ssim(rec, real).mean())
        if evaluator is not None:
            labels = true.argmax(1).to(evaluator.device)
            out["update_agreement"] = float(
                (evaluator.predict(rec).to(labels.device) == labels).double().mean())
    return out


def update_baseline(
    *,
    true_dist: Tensor,
    labels: list[int],
    public_mean: Tensor | None = None,
    true_images: Tensor | None = None,
    evaluator: Evaluator | None = None,
) -> dict[str, float]:
    """The scores of guessing without queries: uniform over ``labels``, the mean public image.

    ``label_acc`` is the expected accuracy of a uniformly random guess among ``labels``
    (``1 / len(labels)``), not the accuracy of a fixed tie-break.
    """
    n, k = true_dist.shape
    uniform = torch.zeros(n, k, dtype=torch.float64)
    uniform[:, sorted(set(labels))] = 1.0 / len(set(labels))
    images = None
    if public_mean is not None and true_images is not None:
        images = public_mean.float().expand_as(true_images).clone()
    out = update_scores(UpdateInference(label_dist=uniform, images=images),
                        true_dist=true_dist, true_images=true_images, evaluator=evaluator)
    out["label_acc"] = 1.0 / len(set(labels))
    return out
