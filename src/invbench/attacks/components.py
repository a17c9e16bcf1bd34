"""Small pieces that attacks are composed from.

Every optimisation-based model inversion attack is a loop of the same stages: sample
starting points (a latent sampler, or an image initialisation), optimise them against an
*identity loss* on the target's logits plus *priors* (a GAN critic, total variation, an
L2 penalty), keep the *best restart* per requested image. Keeping these stages as small
objects makes combinations such as GMI + LOMMA's logit loss a configuration
(``GMI(identity_loss="logit")``) rather than a copy of the attack.

All functions are batched, device-agnostic and free of host synchronisation, so they can
be called inside an optimisation loop. Per-sample losses are returned as ``(B,)`` tensors;
attacks sum them, so each image's (or latent's) gradient does not depend on how many
others are optimised in the same batch.

Example::

    >>> import torch
    >>> from invbench.attacks.components import GaussianLatent, make_identity_loss
    >>> z = GaussianLatent(100, clip=1.0).sample(8, generator=torch.Generator().manual_seed(0))
    >>> loss = make_identity_loss("ce")(torch.randn(8, 5), torch.arange(8) % 5)
    >>> z.shape, loss.shape
    (torch.Size([8, 100]), torch.Size([8]))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from invbench.errors import ConfigError, DataError

__all__ = [
    "ConfidenceIdentity",
    "CrossEntropyIdentity",
    "GaussianLatent",
    "IDENTITY_LOSSES",
    "IdentityLoss",
    "LogitIdentity",
    "MaxMarginIdentity",
    "NesterovSGD",
    "expand_restarts",
    "l2_prior",
    "make_identity_loss",
    "select_best",
    "target_confidence",
    "total_variation",
]


# --------------------------------------------------------------------------- latent samplers


class GaussianLatent:
    """Standard normal latent vectors ``z ~ N(0, I)``, optionally clipped to ``[-clip, clip]``.

    GMI (Zhang et al., CVPR 2020) samples its starting latents from the generator's training
    distribution and clips them to ``[-1, 1]`` after every update; :meth:`project_` is that
    clipping step.

    Arguments:
        dim: latent dimension (the generator's ``latent_dim``), >= 1.
        clip: half-width of the box latents are kept in; ``None`` leaves them unbounded.

    Shape:
        :meth:`sample` returns ``(n, dim)`` float32 on ``device``.

    Example::

        >>> sampler = GaussianLatent(100, clip=1.0)
        >>> z = sampler.sample(4, generator=torch.Generator().manual_seed(0))
        >>> bool(z.abs().max() <= 1.0)
        True
    """

    def __init__(self, dim: int, *, clip: float | None = None) -> None:
        if int(dim) < 1:
            raise ConfigError(f"latent dim must be >= 1, got {dim}")
        if clip is not None and not clip > 0:
            raise ConfigError(f"latent clip must be > 0 (or None for no clipping), got {clip}")
        self.dim = int(dim)
        self.clip = None if clip is None else float(clip)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` latents with ``generator`` (which must live on ``device``)."""
        dev = torch.device(device) if device is not None else generator.device
        z = torch.randn(int(n), self.dim, generator=generator, device=dev)
        return self.project_(z)

    def project_(self, z: Tensor) -> Tensor:
        """Clip ``z`` in place to the sampler's box (no-op without ``clip``); returns ``z``."""
        if self.clip is not None:
            with torch.no_grad():
                z.clamp_(-self.clip, self.clip)
        return z

    def __repr__(self) -> str:
        return f"GaussianLatent(dim={self.dim}, clip={self.clip})"


# --------------------------------------------------------------------------- identity losses


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


# --------------------------------------------------------------------------- image priors


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation per image, averaged over pixels: ``(B, C, H, W) -> (B,)``.

    ``mean |x[h+1, w] - x[h, w]| + mean |x[h, w+1] - x[h, w]|``; the mean (rather than the
    sum) makes a weight mean the same thing at every resolution. Smoothness prior used by
    image-space inversion (Mahendran & Vedaldi 2015; MI-Face's optional regulariser here).

    Example::

        >>> float(total_variation(torch.zeros(1, 1, 4, 4))[0])
        0.0
    """
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(dim=1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(dim=1)
    return dh + dw


def l2_prior(x: Tensor) -> Tensor:
    """Mean squared pixel value per image, ``||x||^2 / (C*H*W)``: ``(B, C, H, W) -> (B,)``.

    Pulls pixels towards 0 (the background of digit/MNIST-like images); normalised by the
    number of pixels so a weight is resolution-independent.

    Example::

        >>> float(l2_prior(torch.ones(2, 1, 3, 3))[1])
        1.0
    """
    return x.pow(2).flatten(1).mean(dim=1)


# --------------------------------------------------------------------------- restarts


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


# --------------------------------------------------------------------------- optimiser


class NesterovSGD:
    """SGD with Nesterov momentum on one tensor, updated in place from a given gradient.

    The update of GMI's reference code (Sutskever et al. 2013 form)::

        v_new = momentum * v - lr * g
        x    += -momentum * v + (1 + momentum) * v_new     # == v_new + momentum * (v_new - v)

    which equals ``torch.optim.SGD(nesterov=True)``. It is a few fused tensor ops with no
    parameter groups, so it suits gradients taken with :func:`torch.autograd.grad` inside
    tight loops (no host synchronisation).

    Arguments:
        lr: step size, > 0.
        momentum: in [0, 1); 0 gives plain gradient descent.

    Example::

        >>> x = torch.ones(3)
        >>> opt = NesterovSGD(lr=0.1, momentum=0.9)
        >>> _ = opt.step_(x, torch.ones(3))
        >>> x
        tensor([0.8100, 0.8100, 0.8100])
    """

    def __init__(self, *, lr: float, momentum: float = 0.9) -> None:
        if not lr > 0:
            raise ConfigError(f"NesterovSGD: lr must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"NesterovSGD: momentum must be in [0, 1), got {momentum}")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self._v: Tensor | None = None

    def step_(self, x: Tensor, grad: Tensor) -> Tensor:
        """Update ``x`` in place with ``grad`` (same shape); returns ``x``."""
        with torch.no_grad():
            if self.momentum == 0.0:
                return x.sub_(grad, alpha=self.lr)
            if self._v is None:
                self._v = torch.zeros_like(x)
            v = self._v
            v.mul_(self.momentum).sub_(grad, alpha=self.lr)
            x.add_(v, alpha=self.momentum).sub_(grad, alpha=self.lr)
            return x
