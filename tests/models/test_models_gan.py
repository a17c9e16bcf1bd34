"""GAN generator/critic: shapes and ranges for every supported size, no BatchNorm in the critic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invbench.errors import ConfigError
from invbench.models import SUPPORTED_HEIGHTS, Discriminator, Generator, make_gan


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("height", [8, 28, 32, 64])
def test_shapes_and_ranges(height: int, channels: int) -> None:
    torch.manual_seed(0)
    gen, critic = make_gan((channels, height, height))
    assert isinstance(gen, Generator) and isinstance(critic, Discriminator)
    assert gen.latent_dim == 100
    gen.eval()
    with torch.no_grad():
        x = gen(torch.randn(3, 100) * 3)
        assert x.shape == (3, channels, height, height)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert x.std() > 0  # not a constant image
        score = critic(x)
    assert score.shape == (3,)
    assert torch.isfinite(score).all()


def test_generator_trains_in_batch_mode_and_custom_latent_dim() -> None:
    gen, critic = make_gan((1, 28, 28), latent_dim=16)
    assert gen.latent_dim == 16
    out = critic(gen(torch.randn(5, 16)))
    out.sum().backward()
    assert all(p.grad is not None for p in gen.parameters())
    assert all(p.grad is not None for p in critic.parameters())


@pytest.mark.parametrize("height", [8, 64])
def test_critic_has_no_batchnorm_and_is_per_sample(height: int) -> None:
    torch.manual_seed(0)
    _, critic = make_gan((3, height, height))
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    critic.train()
    x = torch.rand(4, 3, height, height)
    alone = critic(x[:1])
    together = critic(x)[:1]
    torch.testing.assert_close(alone, together)  # no cross-sample statistics


def test_same_seed_same_weights() -> None:
    def build() -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        gen, critic = make_gan((1, 8, 8))
        return {**gen.state_dict(), **{"d." + k: v for k, v in critic.state_dict().items()}}

    a, b = build(), build()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    ("shape", "latent", "needle"),
    [
        ((1, 16, 16), 100, "8, 28, 32, 64"),
        ((1, 28, 32), 100, "square"),
        ((1, 8), 100, "image_shape"),
        ((1, 8, 8), 0, "latent_dim"),
    ],
)
def test_bad_configs_raise_config_error(shape, latent, needle) -> None:
    with pytest.raises(ConfigError) as info:
        make_gan(shape, latent_dim=latent)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_supported_heights() -> None:
    assert SUPPORTED_HEIGHTS == (8, 28, 32, 64)
