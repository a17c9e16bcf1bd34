"""KEDMI's semi-supervised GAN: a (K+1)-way discriminator with minibatch discrimination.

KEDMI (Chen et al., "Knowledge-Enriched Distributional Model Inversion Attacks", ICCV 2021,
https://arxiv.org/abs/2010.04092) trains its image prior as a semi-supervised GAN
(Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016,
https://arxiv.org/abs/1606.03498): the discriminator classifies an image into the target's
``K`` classes *or* "fake". As in the paper's reference code it outputs only the ``K`` class
logits ``l_1..l_K``; the fake class has a logit fixed at 0, so

    P(real | x) = sum_k exp(l_k) / (1 + sum_k exp(l_k)) = sigmoid(logsumexp_k l_k),

and :func:`real_logit` (``logsumexp`` of the class logits) is the real-vs-fake logit. Before
the class head, a minibatch-discrimination layer (Salimans et al. 2016) appends to every
image's features how close it is to the other images of its batch, so a generator that
collapses to a few modes is easy to spot.

The generator is the DCGAN :class:`~invbench.models.gan.Generator` (heights 8, 28, 32, 64).
Train both with :func:`invbench.training.kedmi.train_kedmi_gan`.

Example::

    gen, disc = make_ssgan((1, 28, 28), num_classes=10, latent_dim=100)
    x = gen(torch.randn(16, 100))       # (16, 1, 28, 28) in [0, 1]
    feats, logits = disc.features_and_logits(x)   # (16, F), (16, 10)
    p_real = torch.sigmoid(real_logit(logits))    # (16,)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from invbench.models.gan import Generator, _check_gan_args, _down_stack

#: minibatch discrimination: number of kernels and their dimension (reference: 64 x 50; smaller
#: here so the layer's ``features x kernels x dims`` tensor stays a few million weights on CPU)
MBD_KERNELS = 32
MBD_DIMS = 16


def real_logit(class_logits: Tensor) -> Tensor:
    """The real-vs-fake logit of a (K+1)-way discriminator whose fake logit is fixed at 0.

    ``logsumexp_k class_logits[:, k]``: ``sigmoid`` of it is ``P(real)``, ``softplus`` of it
    is ``-log P(fake)`` and ``softplus(-it)`` is ``-log P(real)``. Shape ``(B, K) -> (B,)``.

    Example::

        >>> real_logit(torch.log(torch.tensor([[1.0, 3.0]])))  # log(1 + 3)
        tensor([1.3863])
    """
    return torch.logsumexp(class_logits, dim=1)


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016): features + closeness to the batch.

    Each sample's features ``f_i`` (``in_features``) are mapped by a learned tensor ``T`` to
    ``kernels`` rows of ``dims`` numbers ``M_i``; for each kernel ``b`` the layer appends
    ``o_i[b] = mean_{j != i} exp(-||M_i[b] - M_j[b]||_1)``. The output of one sample depends
    on the rest of its batch (a batch of one gets ``o = 0``).

    The reference code sums over ``j`` (its ``mean=False``); here it is the mean, so the
    features keep their scale when the inversion batch is smaller than the training batch.
    ``T`` starts at ``N(0, 1/in_features)`` rather than the reference's ``N(0, 1)``, whose
    huge distances make every ``exp(-d)`` zero (no signal) at the start.

    Shape: ``(B, in_features) -> (B, in_features + kernels)``.
    """

    def __init__(self, in_features: int, kernels: int = MBD_KERNELS, dims: int = MBD_DIMS) -> None:
        super().__init__()
        self.in_features, self.kernels, self.dims = int(in_features), int(kernels), int(dims)
        self.T = nn.Parameter(
            torch.randn(self.in_features, self.kernels * self.dims)
            / math.sqrt(self.in_features)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Append ``kernels`` closeness features to ``x`` ``(B, in_features)``."""
        n = x.shape[0]
        m = (x @ self.T).view(n, self.kernels, self.dims).transpose(0, 1)  # (kernels, B, dims)
        dist = torch.cdist(m, m, p=1)  # (kernels, B, B) L1 distances
        close = torch.exp(-dist).sum(2).transpose(0, 1) - 1.0  # drop each sample's own 1
        return torch.cat([x, close / max(n - 1, 1)], dim=1)


class MinibatchDiscriminator(nn.Module):
    """KEDMI's discriminator ``images (B, C, H, W) in [0, 1] -> class logits (B, K)``.

    A stride-2 conv stack (LeakyReLU; a per-sample layer norm, ``GroupNorm`` with one group,
    after every conv but the first — the reference uses InstanceNorm; no BatchNorm, so a
    sample's output depends on its batch only through minibatch discrimination), then
    :class:`MinibatchDiscrimination` and a linear head over the target's ``num_classes``.
    The fake class's logit is fixed at 0 (see :func:`real_logit`).

    Attributes:
        num_classes: ``K``, the width of the class head.
        feature_dim: width of the features :meth:`features_and_logits` returns (the
            conv stack's flattened output, before minibatch discrimination, as in the
            reference's feature matching).
    """

    def __init__(self, image_shape: tuple[int, int, int], *, num_classes: int) -> None:
        super().__init__()
        c, h, _ = image_shape
        self.image_shape = tuple(image_shape)
        self.num_classes = int(num_classes)
        layers, self.feature_dim = _down_stack(c, h)  # the WGAN-GP critic's conv stack
        self.net = nn.Sequential(*layers)
        self.mbd = MinibatchDiscrimination(self.feature_dim)
        self.head = nn.Linear(self.feature_dim + self.mbd.kernels, self.num_classes)

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(features (B, feature_dim), class logits (B, K))`` of images ``x`` in [0, 1]."""
        feats = self.net(x * 2.0 - 1.0)
        return feats, self.head(self.mbd(feats))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``(B, K)``; ``real_logit(D(x))`` is the real-vs-fake logit."""
        return self.features_and_logits(x)[1]


def make_ssgan(
    image_shape: tuple[int, int, int], *, num_classes: int, latent_dim: int = 100
) -> tuple[Generator, MinibatchDiscriminator]:
    """Build KEDMI's untrained (generator, discriminator) pair for square images.

    Args:
        image_shape: ``(C, H, W)`` with H == W in {8, 28, 32, 64} and any C >= 1.
        num_classes: the target's number of classes ``K`` (the discriminator's class head).
        latent_dim: latent width of the generator (>= 1).

    Raises:
        ConfigError: unsupported ``image_shape``, ``num_classes`` or ``latent_dim``.

    Example::

        torch.manual_seed(0)
        gen, disc = make_ssgan((1, 8, 8), num_classes=5)
    """
    shape = _check_gan_args(image_shape, latent_dim=latent_dim, num_classes=num_classes)
    return (
        Generator(shape, latent_dim=latent_dim),
        MinibatchDiscriminator(shape, num_classes=num_classes),
    )
