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

from invbench.attacks.components.latents import GaussianLatent
from invbench.attacks.components.losses import (
    IDENTITY_LOSSES,
    ConfidenceIdentity,
    CrossEntropyIdentity,
    IdentityLoss,
    LogitIdentity,
    MaxMarginIdentity,
    make_identity_loss,
    target_confidence,
)
from invbench.attacks.components.optim import NesterovSGD
from invbench.attacks.components.priors import l2_prior, total_variation
from invbench.attacks.components.selection import expand_restarts, select_best

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
