"""Label smoothing, positive or negative, as a model inversion defense (Struppek et al., 2024)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.params import Params
from invbench.registry import register_defense


def smoothed_cross_entropy(logits: Tensor, labels: Tensor, alpha: float) -> Tensor:
    """Batch mean of ``(1 - alpha) * NLL(y) + alpha * mean_k(-log p_k)``: ``(B, K), (B,) -> ()``.

    The cross-entropy against the smoothed target ``(1 - alpha) * onehot(y) + alpha / K``
    (Szegedy et al. 2016). ``alpha`` may be negative (Struppek et al. 2024): the target then
    puts more than 1 on the true class and negative mass on the others, which pushes the
    other classes' probabilities down further than plain cross-entropy does.

    Example::

        >>> import torch
        >>> logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
        >>> float(smoothed_cross_entropy(logits, torch.tensor([0]), 0.0))  # -log 0.5
        0.6931471824645996
    """
    logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(1, labels.view(-1, 1)).squeeze(1)
    return ((1.0 - alpha) * nll + alpha * (-logp.mean(dim=-1))).mean()


def negative_smoothing_schedule(epoch: int, epochs: int, alpha: float) -> float:
    """The smoothing factor of ``epoch`` (0-based) of ``epochs``, as the reference schedules a
    negative ``alpha``: 0 for the first half of training, then ``alpha * (epoch + 1 - E/2) /
    (E/2)`` up to three quarters, then ``alpha``.

    This is the reference code's schedule for 100 epochs (0 before epoch 50, a ramp of slope
    ``alpha / 50`` over epochs 50-74, ``alpha`` from epoch 75), in fractions of the run; like
    the reference, the ramp reaches only ``alpha / 2`` before the jump to ``alpha``.

    Example::

        >>> [negative_smoothing_schedule(e, 100, -0.1) for e in (49, 50, 74, 75)]
        [0.0, -0.002, -0.05, -0.1]
    """
    half, three_quarters = epochs / 2, 3 * epochs / 4
    if epoch < half:
        return 0.0
    if epoch < three_quarters:
        return alpha * (epoch + 1 - half) / (epochs - half)
    return alpha


@register_defense("label-smoothing")
class LabelSmoothing(Defense):
    """Label smoothing with a factor that may be negative (Struppek et al., ICLR 2024).

    Paper: L. Struppek, D. Hintersdorf, K. Kersting, "Be Careful What You Smooth For: Label
    Smoothing Can Be a Privacy Shield but Also a Catalyst for Model Inversion Attacks",
    ICLR 2024, https://arxiv.org/abs/2310.06549 (reference code:
    github.com/LukasStruppek/Plug-and-Play-Attacks, ``train_model.py``). The target trains on
    :func:`smoothed_cross_entropy`. Positive ``alpha`` (ordinary label smoothing) makes the
    target *easier* to invert; negative ``alpha`` (NegLS) makes it harder, because it
    removes the class-related signal that an attack's gradient follows far from the data.

    Threat model: a training-time defense; it changes the model, so it applies to every
    access level.

    Schedule: a negative ``alpha`` follows the reference's schedule
    (:func:`negative_smoothing_schedule`: 0 for the first half of the epochs, a ramp, then
    ``alpha`` for the last quarter) because training with it from the start does not
    converge; a positive ``alpha`` is used from the first epoch, as in the reference.

    Defaults: ``alpha`` -0.05, the paper's defense setting on face recognition; the paper's
    positive setting is 0.1. ``alpha`` is the strength to sweep.

    Example::

        model = LabelSmoothing(alpha=-0.05).train(protocol, seed=0)
    """

    class Params(Params):
        """The smoothing factor (paper: 0.1 to help attacks, -0.05 to defend)."""

        alpha: float = Field(
            -0.05, gt=-1.0, lt=1.0,
            description="smoothing factor; < 0 defends (NegLS), > 0 is ordinary smoothing",
        )

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        #: the factor in use (set per epoch while training; ``alpha`` otherwise)
        self.current_alpha = float(self.params.alpha)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """:func:`smoothed_cross_entropy` with the current epoch's factor."""
        return smoothed_cross_entropy(model(x), y, self.current_alpha)

    def train_hooks(
        self, model: nn.Module, data: TrainingData, config: TrainConfig, seed: int
    ) -> dict[str, Any]:
        """For a negative ``alpha``, set each epoch's factor (``on_epoch``)."""
        alpha = float(self.params.alpha)
        epochs = int(config.epochs)
        self.current_alpha = alpha

        def set_factor(epoch: int) -> None:
            self.current_alpha = (
                negative_smoothing_schedule(epoch, epochs, alpha) if alpha < 0 else alpha
            )

        return {"on_epoch": set_factor}
