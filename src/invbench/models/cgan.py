"""Conditional GAN prior: a class-conditional generator and a projection discriminator.

PLG-MI (Yuan et al., "Pseudo Label-Guided Model Inversion Attack via Conditional Generative
Adversarial Network", AAAI 2023, https://arxiv.org/abs/2302.09814) trains a conditional GAN
on public images pseudo-labelled by the target, so that the generator ``G(z, y)`` makes
images of one target class per label and the inversion searches only the latent ``z`` of
the label's own sub-space.

- :class:`ConditionalGenerator`: DCGAN-style (a linear projection of ``z`` to a small
  feature map, stride-2 transposed convolutions, a final 3x3 convolution and a sigmoid, so
  samples lie in [0, 1]) with *conditional* BatchNorm: every normalisation's scale and
  shift are looked up from the class (:class:`ConditionalBatchNorm2d`; de Vries et al.
  2017, Miyato & Koyama 2018).
- :class:`ProjectionDiscriminator`: the projection discriminator of Miyato & Koyama,
  "cGANs with Projection Discriminator", ICLR 2018, https://arxiv.org/abs/1802.05637::

      D(x, y) = psi(phi(x)) + <embed(y), phi(x)>

  with ``phi`` a stack of stride-2 convolutions (LeakyReLU), then ReLU and global *sum*
  pooling, ``psi`` a linear layer and ``embed`` a class embedding. Every weight is
  spectrally normalised (Miyato et al., ICLR 2018, https://arxiv.org/abs/1802.05957), the
  embedding included, as in PLG-MI's reference code.

The reference code uses SNGAN's ResNet generator and discriminator (64 channels, four
resolution stages at 64 px); these are plain convolution stacks of the widths of
:mod:`invbench.models.gan`, so that the prior trains in minutes on a CPU at 28 px. Heights
8, 28, 32 and 64 are supported (:data:`invbench.models.gan.SUPPORTED_HEIGHTS`). Train them
with :func:`invbench.training.cgan.train_plgmi_cgan`. Example::

    gen, disc = make_cgan((1, 28, 28), num_classes=5, latent_dim=128)
    y = torch.tensor([0, 3])
    x = gen(torch.randn(2, 128), y)     # (2, 1, 28, 28) in [0, 1]
    score = disc(x, y)                  # (2,)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from invbench.models.gan import _LAYOUT, _check_gan_args

#: channels of the generator's last stage (as :mod:`invbench.models.gan`)
_G_WIDTH = 32
#: channels of the discriminator's first stage; it doubles per stage (half the WGAN critic's:
#: the discriminator runs ``n_dis`` times per generator step, so it sets the CPU cost)
_D_WIDTH = 32


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose per-channel scale and shift depend on the class ``y``.

    ``out = gamma[y] * (x - mean) / sqrt(var + eps) + beta[y]``, the statistics over the
    batch in training mode and the running ones in eval mode (then samples do not interact).
    ``gamma`` starts at 1 and ``beta`` at 0 for every class (plain BatchNorm at init).

    Arguments:
        num_features: channels ``C`` of the input.
        num_classes: number of classes ``K``.

    Shape:
        ``x``: ``(B, C, H, W)``, ``y``: ``(B,)`` int64 in ``[0, K)``; output as ``x``.

    Example::

        >>> bn = ConditionalBatchNorm2d(4, num_classes=3)
        >>> bn(torch.randn(2, 4, 5, 5), torch.tensor([0, 2])).shape
        torch.Size([2, 4, 5, 5])
    """

    def __init__(self, num_features: int, *, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.scale = nn.Embedding(num_classes, num_features)
        self.shift = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Normalise ``x`` and apply the scale and shift of each sample's class."""
        h = self.bn(x)
        return self.scale(y)[:, :, None, None] * h + self.shift(y)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """Class-conditional generator ``(z (B, latent_dim), y (B,)) -> images (B, C, H, W)``.

    DCGAN layout (as :class:`invbench.models.gan.Generator`) with a
    :class:`ConditionalBatchNorm2d` after the projection and after every transposed
    convolution; a sigmoid keeps images in [0, 1].

    Attributes:
        latent_dim: width of ``z`` (sample it from a standard normal).
        num_classes: number of classes ``y`` ranges over.
        image_shape: ``(C, H, W)`` of the output.
    """

    def __init__(
        self, image_shape: tuple[int, int, int], *, num_classes: int, latent_dim: int = 128
    ) -> None:
        super().__init__()
        c, h, _ = image_shape
        side, n_up = _LAYOUT[h]
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        top = _G_WIDTH * 2**n_up
        self._top = (top, side)
        self.project = nn.Linear(latent_dim, top * side * side, bias=False)
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(top, num_classes=num_classes)])
        self.ups = nn.ModuleList()
        width = top
        for _ in range(n_up):
            self.ups.append(
                nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False)
            )
            self.norms.append(ConditionalBatchNorm2d(width // 2, num_classes=num_classes))
            width //= 2
        self.out = nn.Conv2d(width, c, 3, padding=1)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] of classes ``y`` (B,) from latents ``z``."""
        top, side = self._top
        h = self.project(z).view(z.shape[0], top, side, side)
        h = F.relu(self.norms[0](h, y))
        for up, norm in zip(self.ups, self.norms[1:], strict=True):
            h = F.relu(norm(up(h), y))
        return self.out(h).sigmoid()


def _sn_phi(image_shape: tuple[int, int, int]) -> tuple[nn.Sequential, int]:
    """The spectrally normalised feature stack of the conditional discriminators: stride-2
    4x4 convolutions with LeakyReLU(0.1), a 3x3 convolution and ReLU; and its width."""
    c, h, _ = image_shape
    _, n_down = _LAYOUT[h]
    layers: list[nn.Module] = []
    width_in, width = c, _D_WIDTH
    for _ in range(n_down):
        layers += [
            spectral_norm(nn.Conv2d(width_in, width, 4, stride=2, padding=1)),
            nn.LeakyReLU(0.1),
        ]
        width_in, width = width, width * 2
    layers += [spectral_norm(nn.Conv2d(width_in, width_in, 3, padding=1)), nn.ReLU()]
    return nn.Sequential(*layers), width_in


class ProjectionDiscriminator(nn.Module):
    """Projection discriminator ``D(x, y) = psi(phi(x)) + <embed(y), phi(x)>`` (raw scores).

    Miyato & Koyama, ICLR 2018, https://arxiv.org/abs/1802.05637. ``phi`` (:meth:`features`)
    maps images in [0, 1] to ``(B, feat_dim)``: spectrally normalised stride-2 4x4
    convolutions with LeakyReLU(0.1), a 3x3 convolution, ReLU and global sum pooling;
    ``psi`` is a spectrally normalised linear layer and ``embed`` a spectrally normalised
    class embedding (:meth:`embed`). No BatchNorm, so every sample is scored on its own.

    Attributes:
        num_classes: number of classes; ``feat_dim``: width of ``phi(x)``;
        image_shape: ``(C, H, W)`` of the input.
    """

    def __init__(self, image_shape: tuple[int, int, int], *, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.phi, width_in = _sn_phi(image_shape)
        self.feat_dim = width_in
        self.psi = spectral_norm(nn.Linear(width_in, 1))
        self.class_embed = spectral_norm(nn.Embedding(num_classes, width_in))
        nn.init.xavier_uniform_(self.class_embed.parametrizations.weight.original)

    def features(self, x: Tensor) -> Tensor:
        """``phi(x)``: (B, feat_dim) features of images ``x`` (B, C, H, W) in [0, 1]."""
        return self.phi(x * 2.0 - 1.0).sum(dim=(2, 3))

    def embed(self, y: Tensor) -> Tensor:
        """The (spectrally normalised) class embeddings (B, feat_dim) of labels ``y``."""
        return self.class_embed(y)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores (B,) of images ``x`` as real members of classes ``y``; higher = more real."""
        h = self.features(x)
        return self.psi(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)


def make_cgan(
    image_shape: tuple[int, int, int], *, num_classes: int, latent_dim: int = 128
) -> tuple[ConditionalGenerator, ProjectionDiscriminator]:
    """Build an untrained (generator, projection discriminator) pair for square images.

    Args:
        image_shape: ``(C, H, W)`` with H == W in {8, 28, 32, 64} and any C >= 1.
        num_classes: classes the pair is conditioned on (>= 1).
        latent_dim: latent width of the generator (>= 1; PLG-MI's reference: 128).

    Raises:
        ConfigError: unsupported ``image_shape``, ``num_classes`` or ``latent_dim``.

    Example::

        torch.manual_seed(0)
        gen, disc = make_cgan((3, 64, 64), num_classes=10)
    """
    shape = _check_gan_args(image_shape, what="the conditional GAN", num_classes=num_classes,
                            latent_dim=latent_dim)
    gen = ConditionalGenerator(shape, num_classes=num_classes, latent_dim=latent_dim)
    return gen, ProjectionDiscriminator(shape, num_classes=num_classes)


class AuxiliaryClassifierDiscriminator(nn.Module):
    """An ACGAN discriminator: a real/fake score and class logits from shared features.

    Odena, Olah, Shlens, ICML 2017, https://arxiv.org/abs/1610.09585; the target-aware
    variant of LOKT (Nguyen et al., NeurIPS 2023) trains the class head on generated images
    labelled by the target. Features as :class:`ProjectionDiscriminator`'s (spectrally
    normalised convolutions, global sum pooling); two spectrally normalised linear heads.

    Shape: images (B, C, H, W) in [0, 1] -> ``(scores (B,), class logits (B, K))``.
    """

    def __init__(self, image_shape: tuple[int, int, int], *, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.image_shape = tuple(image_shape)
        self.phi, width = _sn_phi(image_shape)
        self.feat_dim = width
        self.adv = spectral_norm(nn.Linear(width, 1))
        self.cls = spectral_norm(nn.Linear(width, num_classes))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Real/fake scores (B,) (logits; higher = more real) and class logits (B, K)."""
        h = self.phi(x * 2.0 - 1.0).sum(dim=(2, 3))
        return self.adv(h).squeeze(1), self.cls(h)


def make_tacgan(
    image_shape: tuple[int, int, int], *, num_classes: int, latent_dim: int = 128
) -> tuple[ConditionalGenerator, AuxiliaryClassifierDiscriminator]:
    """Build an untrained (conditional generator, ACGAN discriminator) pair (LOKT's T-ACGAN).

    Same shapes and checks as :func:`make_cgan`.
    """
    shape = _check_gan_args(image_shape, what="the conditional GAN", num_classes=num_classes,
                            latent_dim=latent_dim)
    gen = ConditionalGenerator(shape, num_classes=num_classes, latent_dim=latent_dim)
    return gen, AuxiliaryClassifierDiscriminator(shape, num_classes=num_classes)
