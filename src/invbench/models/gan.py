"""GAN priors: a DCGAN-style generator and a WGAN-GP critic for 8, 28, 32 and 64 px images.

The generator follows DCGAN (Radford et al. 2016, https://arxiv.org/abs/1511.06434): a
linear projection of the latent to a small feature map, then stride-2 transposed
convolutions with BatchNorm and ReLU, a final 3x3 convolution and a sigmoid, so samples lie
in [0, 1] like every image in invbench. The critic is the matching stride-2 conv stack with
LeakyReLU and *no BatchNorm* (the gradient penalty of WGAN-GP, Gulrajani et al. 2017,
https://arxiv.org/abs/1704.00028, is defined per sample, which batch statistics break);
layers after the first use a per-sample layer norm (``GroupNorm`` with one group) as the
paper recommends. Train them with :func:`invbench.training.train_wgan_gp`.

Attacks that need an image prior (GMI, KEDMI, ...) build one here from public data.
Example::

    gen, critic = make_gan((1, 8, 8), latent_dim=100)
    x = gen(torch.randn(16, gen.latent_dim))   # (16, 1, 8, 8) in [0, 1]
    score = critic(x)                          # (16,)
"""

from __future__ import annotations

from torch import Tensor, nn

from invbench.errors import ConfigError

# height -> (side of the first feature map, number of x2 upsampling stages)
_LAYOUT: dict[int, tuple[int, int]] = {8: (2, 2), 28: (7, 2), 32: (4, 3), 64: (4, 4)}
SUPPORTED_HEIGHTS: tuple[int, ...] = tuple(sorted(_LAYOUT))

_BASE_WIDTH = 32  # channels of the last generator stage / first critic stage is twice this


class Generator(nn.Module):
    """DCGAN-style generator ``z (B, latent_dim) -> images (B, C, H, W)`` in [0, 1].

    Attributes:
        latent_dim: width of the latent vector (sample it from a standard normal).
        image_shape: ``(C, H, W)`` of the output.
    """

    def __init__(self, image_shape: tuple[int, int, int], *, latent_dim: int = 100) -> None:
        super().__init__()
        c, h, _ = image_shape
        side, n_up = _LAYOUT[h]
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        top = _BASE_WIDTH * 2**n_up
        self._top = (top, side)
        self.project = nn.Sequential(
            nn.Linear(latent_dim, top * side * side, bias=False),
            nn.BatchNorm1d(top * side * side),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        width = top
        for _ in range(n_up):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.Conv2d(width, c, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] from latents ``z`` (B, latent_dim)."""
        top, side = self._top
        return self.net(self.project(z).view(z.shape[0], top, side, side))


def _down_stack(channels: int, height: int) -> tuple[list[nn.Module], int]:
    """The critic's conv stack (stride-2 4x4 convs, GroupNorm after the first, LeakyReLU)
    down to the smallest feature map, flattened; and the flattened width. Shared by the
    WGAN-GP critic and KEDMI's minibatch discriminator."""
    side, n_down = _LAYOUT[height]
    layers: list[nn.Module] = []
    width_in, width = channels, 2 * _BASE_WIDTH
    for i in range(n_down):
        layers.append(nn.Conv2d(width_in, width, 4, stride=2, padding=1))
        if i > 0:
            layers.append(nn.GroupNorm(1, width))
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        width_in, width = width, width * 2
    layers.append(nn.Flatten())
    return layers, width_in * side * side


def _check_gan_args(
    image_shape: tuple[int, int, int], *, what: str = "the GAN", **positive_ints: object
) -> tuple[int, int, int]:
    """``(C, H, W)`` of a supported square image shape, and every keyword an int >= 1."""
    from invbench.models.classifiers import check_image_shape

    c, h, w = check_image_shape(image_shape)
    sizes = ", ".join(str(s) for s in SUPPORTED_HEIGHTS)
    if h != w or h not in _LAYOUT:
        raise ConfigError(
            f"{what} supports square images of height {sizes}; got image_shape {(c, h, w)}"
        )
    for name, value in positive_ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
    return c, h, w


class Discriminator(nn.Module):
    """WGAN-GP critic ``images (B, C, H, W) in [0, 1] -> raw scores (B,)`` (no BatchNorm)."""

    def __init__(self, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        c, h, _ = image_shape
        self.image_shape = tuple(image_shape)
        layers, flat = _down_stack(c, h)
        self.net = nn.Sequential(*layers, nn.Linear(flat, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Critic scores (B,) of images ``x`` (B, C, H, W) in [0, 1]; higher = more real."""
        return self.net(x * 2.0 - 1.0).squeeze(1)


def make_gan(
    image_shape: tuple[int, int, int], *, latent_dim: int = 100
) -> tuple[Generator, Discriminator]:
    """Build an untrained (generator, critic) pair for square images of height 8, 28, 32 or 64.

    Args:
        image_shape: ``(C, H, W)`` with H == W in {8, 28, 32, 64} and any C >= 1.
        latent_dim: latent width of the generator (>= 1).

    Raises:
        ConfigError: unsupported ``image_shape`` or ``latent_dim``.

    Example::

        torch.manual_seed(0)
        gen, critic = make_gan((3, 64, 64))
    """
    shape = _check_gan_args(image_shape, latent_dim=latent_dim)
    return Generator(shape, latent_dim=latent_dim), Discriminator(shape)
