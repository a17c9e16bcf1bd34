"""Small pieces that attacks are composed from.

Every optimisation-based model inversion attack is a loop of the same stages: sample
starting points (a latent sampler, or an image initialisation), optimise them against an
*identity loss* on the target's logits plus *priors* (a GAN critic, total variation, an
L2 penalty), keep the *best restart* per requested image. Keeping these stages as small
objects makes combinations such as GMI + LOMMA's logit loss a configuration
(``GMI(identity_loss="logit")``) rather than a copy of the attack.

Modules: ``latents`` (samplers; KEDMI's learnable :class:`LatentGaussian`), ``losses``
(identity losses), ``priors`` (TV, L2), ``optim`` (:func:`make_optimizer` by name,
:class:`NesterovSGD`), ``augment`` (differentiable crops, flips, shifts, jitter;
:func:`make_augment`; they live in :mod:`invbench.data.augment`, shared with defenses),
``selection`` (restarts, initial/final selection, confidence under
augmentation), ``batching`` (:func:`chunked`).

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

from invbench.attacks.components.batching import (
    QUERY_CHUNK,
    assemble_by_label,
    chunked,
    generate,
    label_counts,
    query_probs,
)
from invbench.attacks.components.latents import GaussianLatent, LatentGaussian
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
from invbench.attacks.components.model_augmentation import (
    LOMMA_PARAMS,
    LommaParams,
    ModelAugmentation,
    make_model_augmentation,
)
from invbench.attacks.components.optim import OPTIMIZERS, NesterovSGD, make_optimizer
from invbench.attacks.components.priors import l2_prior, total_variation
from invbench.attacks.components.selection import (
    confidence_under_augmentation,
    expand_restarts,
    final_selection,
    initial_selection,
    select_best,
)
from invbench.data.augment import (
    AUGMENTS,
    Augment,
    Compose,
    Jitter,
    RandomFlip,
    RandomResizedCrop,
    RandomShift,
    crop_resize,
    hflip,
    make_augment,
    roll,
    shift,
)

__all__ = [
    "assemble_by_label",
    "generate",
    "label_counts",
    "QUERY_CHUNK",
    "query_probs",
    "LOMMA_PARAMS",
    "LommaParams",
    "ModelAugmentation",
    "make_model_augmentation",
    "AUGMENTS",
    "Augment",
    "Compose",
    "ConfidenceIdentity",
    "CrossEntropyIdentity",
    "GaussianLatent",
    "IDENTITY_LOSSES",
    "IdentityLoss",
    "Jitter",
    "LatentGaussian",
    "LogitIdentity",
    "MaxMarginIdentity",
    "NesterovSGD",
    "OPTIMIZERS",
    "RandomFlip",
    "RandomResizedCrop",
    "RandomShift",
    "chunked",
    "confidence_under_augmentation",
    "crop_resize",
    "expand_restarts",
    "final_selection",
    "hflip",
    "initial_selection",
    "l2_prior",
    "make_augment",
    "make_identity_loss",
    "make_optimizer",
    "roll",
    "select_best",
    "shift",
    "target_confidence",
    "total_variation",
]
