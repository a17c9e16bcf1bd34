"""Identity losses: per-sample losses on the target's logits, low when it sees the label."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from invbench.errors import ConfigError


def _label_logit(logits: Tensor, labels: Tensor) -> Tensor:
    return logits.gather(1, labels.view(-1, 1)).squeeze(1)


def target_confidence(logits: Tensor, labels: Tensor) -> Tensor:
    """Softmax probability of each row's label: ``(B, K), (B,) -> (B,)`` in [0, 1].

    The score attacks use to rank restarts (the paper's "target confidence").
    """
    return torch.softmax(logits, dim=1).gather(1, labels.view(-1, 1)).squeeze(1)


class IdentityLoss(ABC):
    """A per-sample loss that is low when the target classifies a sample as its label.

    Subclasses implement :meth:`__call__` mapping logits ``(B, K)`` and labels ``(B,)``
    (int64) to a loss ``(B,)``. They are stateless and cheap to build.
    """

    #: short name used by attacks' ``identity_loss`` / ``loss`` parameters
    key: ClassVar[str] = ""

    @abstractmethod
    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Per-sample loss ``(B,)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropyIdentity(IdentityLoss):
    """Cross-entropy ``-log softmax(f(x))[y]``: GMI's identity loss (Zhang et al. 2020).

    Example::

        >>> CrossEntropyIdentity()(torch.tensor([[10.0, 0.0]]), torch.tensor([0])) < 1e-3
        tensor([True])
    """

    key: ClassVar[str] = "ce"

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(logits, labels, reduction="none")


class ConfidenceIdentity(IdentityLoss):
    """Fredrikson et al.'s cost ``1 - softmax(f(x))[y]`` (CCS 2015), in [0, 1].

    It saturates (vanishing gradient) once the label's probability is near 0 or 1, which
    is why later attacks use cross-entropy or logit losses instead.

    Example::

        >>> ConfidenceIdentity()(torch.zeros(1, 4), torch.tensor([2]))
        tensor([0.7500])
    """

    key: ClassVar[str] = "prob"

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return 1.0 - target_confidence(logits, labels)


class LogitIdentity(IdentityLoss):
    """Negative label logit ``-f(x)[y]``: LOMMA's logit loss (Nguyen et al., CVPR 2023).

    "Re-thinking Model Inversion Attacks Against Deep Neural Networks",
    https://arxiv.org/abs/2304.01669. Unlike cross-entropy it keeps pushing the label's
    logit up after the softmax saturates. (LOMMA adds a feature-space regulariser that
    needs public features; it is not part of this loss.)

    Example::

        >>> LogitIdentity()(torch.tensor([[1.0, 3.0]]), torch.tensor([1]))
        tensor([-3.])
    """

    key: ClassVar[str] = "logit"

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        return -_label_logit(logits, labels)


class MaxMarginIdentity(IdentityLoss):
    """Max-margin loss ``-f(x)[y] + max_{k != y} f(x)[k]`` (Yuan et al., PLG-MI, AAAI 2023).

    "Pseudo Label-Guided Model Inversion Attack via Conditional Generative Adversarial
    Network", https://arxiv.org/abs/2302.09814. Negative once the label wins by a margin.

    Example::

        >>> MaxMarginIdentity()(torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([1]))
        tensor([-1.])
    """

    key: ClassVar[str] = "max-margin"

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        own = _label_logit(logits, labels)
        mask = F.one_hot(labels, logits.shape[1]).bool()
        other = logits.masked_fill(mask, float("-inf")).amax(dim=1)
        return other - own


#: name -> identity loss class, for attacks' ``identity_loss`` parameters
IDENTITY_LOSSES: dict[str, type[IdentityLoss]] = {
    cls.key: cls
    for cls in (CrossEntropyIdentity, ConfidenceIdentity, LogitIdentity, MaxMarginIdentity)
}


def make_identity_loss(name: str) -> IdentityLoss:
    """Build the identity loss called ``name`` (one of :data:`IDENTITY_LOSSES`)."""
    try:
        return IDENTITY_LOSSES[name]()
    except KeyError:
        allowed = ", ".join(sorted(IDENTITY_LOSSES))
        raise ConfigError(f"unknown identity loss '{name}'; choose one of: {allowed}") from None
