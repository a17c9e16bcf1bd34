"""KEDMI's semi-supervised GAN: (K+1)-way discriminator, minibatch discrimination, training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from invbench.errors import ConfigError, DataError
from invbench.models.gan import SUPPORTED_HEIGHTS, Generator
from invbench.models.ssgan import (
    MinibatchDiscrimination,
    MinibatchDiscriminator,
    make_ssgan,
    real_logit,
)
from invbench.training.kedmi import prediction_entropy, soft_cross_entropy, train_kedmi_gan


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("height", SUPPORTED_HEIGHTS)
def test_shapes_and_ranges(height: int, channels: int) -> None:
    torch.manual_seed(0)
    gen, disc = make_ssgan((channels, height, height), num_classes=7, latent_dim=16)
    assert isinstance(gen, Generator) and isinstance(disc, MinibatchDiscriminator)
    assert gen.latent_dim == 16 and disc.num_classes == 7
    gen.eval()
    with torch.no_grad():
        x = gen(torch.randn(3, 16))
        assert x.shape == (3, channels, height, height)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        feats, logits = disc.features_and_logits(x)
    assert feats.shape == (3, disc.feature_dim) and logits.shape == (3, 7)
    assert torch.equal(disc(x), logits)
    assert torch.isfinite(logits).all()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in disc.modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_shape": (1, 16, 16)}, "the GAN supports square images of height 8, 28, 32, 64"),
        ({"image_shape": (1, 28, 32)}, "the GAN supports square images"),
        ({"image_shape": (1, 28)}, "image_shape must be (channels, height, width)"),
        ({"num_classes": 0}, "num_classes must be an int >= 1, got 0"),
        ({"num_classes": True}, "num_classes must be an int >= 1"),
        ({"latent_dim": 0}, "latent_dim must be an int >= 1, got 0"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict, message: str) -> None:
    args = {"image_shape": (1, 8, 8), "num_classes": 5, "latent_dim": 100, **kwargs}
    shape = args.pop("image_shape")
    with pytest.raises(ConfigError) as info:
        make_ssgan(shape, **args)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_real_logit_is_the_log_odds_of_real_against_a_zero_fake_logit() -> None:
    logits = torch.tensor([[math.log(1.0), math.log(3.0)], [0.0, 0.0]])
    lse = real_logit(logits)
    torch.testing.assert_close(lse, torch.tensor([math.log(4.0), math.log(2.0)]))
    # P(real) of the (K+1)-way softmax with the fake logit 0: (1 + 3) / (1 + 3 + 1)
    full = torch.softmax(torch.cat([logits, torch.zeros(2, 1)], dim=1), dim=1)
    torch.testing.assert_close(torch.sigmoid(lse), 1.0 - full[:, -1])
    torch.testing.assert_close(torch.sigmoid(lse[:1]), torch.tensor([0.8]))


def test_minibatch_discrimination_hand_computed_and_depends_on_the_batch() -> None:
    layer = MinibatchDiscrimination(2, kernels=1, dims=2)
    with torch.no_grad():
        layer.T.copy_(torch.eye(2))  # M_i = x_i
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]])
    out = layer(x)
    # L1 distances: d01 = 1, d02 = 3, d12 = 4; o_i = mean over the other two of exp(-d)
    e = math.exp
    want = torch.tensor([(e(-1) + e(-3)) / 2, (e(-1) + e(-4)) / 2, (e(-3) + e(-4)) / 2])
    torch.testing.assert_close(out[:, :2], x)
    torch.testing.assert_close(out[:, 2], want)
    # the same sample in another batch gets other features; alone it gets 0
    torch.testing.assert_close(layer(x[:2])[:, 2], torch.tensor([e(-1), e(-1)]))
    assert float(layer(x[:1]).detach()[0, 2]) == 0.0

    torch.manual_seed(0)
    _, disc = make_ssgan((1, 8, 8), num_classes=5)
    imgs = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        first = disc(imgs)[:3]
        alone = disc(imgs[:3])
        other = disc(torch.cat([imgs[:3], imgs[:3]]))[:3]  # each sample has a twin now
    assert not torch.allclose(first, other)
    assert not torch.allclose(alone, other)


# -- train_kedmi_gan -------------------------------------------------------------------------


def test_soft_cross_entropy_and_entropy_hand_computed() -> None:
    logits = torch.tensor([[math.log(1.0), math.log(3.0)]])
    q = torch.tensor([[0.5, 0.5]])
    want = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    torch.testing.assert_close(soft_cross_entropy(logits, q), torch.tensor(want))
    p = torch.tensor([0.25, 0.75])
    torch.testing.assert_close(
        prediction_entropy(logits), -(p * p.log()).sum()
    )


def _toy(n: int = 40, k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g)
    soft = torch.softmax(torch.randn(n, k, generator=g) * 3, dim=1)
    return x, soft


def _trained(seed: int, steps: int = 3) -> tuple[dict, dict[str, torch.Tensor]]:
    x, soft = _toy()
    torch.manual_seed(0)
    gen, disc = make_ssgan((1, 8, 8), num_classes=3, latent_dim=8)
    losses = train_kedmi_gan(gen, disc, x, soft, steps=steps, batch_size=8, n_critic=2,
                             seed=seed)
    return losses, {**gen.state_dict(), **{"d." + k: v for k, v in disc.state_dict().items()}}


def test_training_is_seeded_and_reports_its_losses() -> None:
    la, a = _trained(0)
    lb, b = _trained(0)
    _, c = _trained(1)
    assert la == lb and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert set(la) == {"d_loss", "supervised", "unsupervised", "g_loss", "feature_matching",
                       "entropy", "accuracy"}
    assert la["d_loss"] == pytest.approx(la["supervised"] + la["unsupervised"], rel=1e-5)
    assert all(math.isfinite(v) for v in la.values())


def test_discriminator_learns_the_soft_labels() -> None:
    x, soft = _toy(n=16)
    torch.manual_seed(0)
    gen, disc = make_ssgan((1, 8, 8), num_classes=3, latent_dim=8)
    with torch.no_grad():
        before = soft_cross_entropy(disc(x), soft)
    losses = train_kedmi_gan(gen, disc, x, soft, steps=30, batch_size=16, n_critic=2, seed=0)
    assert not gen.training and not disc.training
    with torch.no_grad():
        after = soft_cross_entropy(disc(x), soft)
    assert float(after) < 0.7 * float(before), (float(before), float(after))
    assert losses["accuracy"] > 0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"steps": 0}, ConfigError, "steps must be an int >= 1, got 0"),
        ({"n_critic": 0}, ConfigError, "n_critic must be an int >= 1, got 0"),
        ({"lr": 0.0}, ConfigError, "lr must be a number > 0"),
        ({"entropy_weight": -1.0}, ConfigError, "entropy_weight must be a number >= 0"),
        ({"betas": (0.5, 1.0)}, ConfigError, "betas must be two numbers in [0, 1)"),
        ({"soft_labels": torch.full((40, 2), 0.5)}, DataError, "train KEDMI GAN: soft_labels"
         " have 2 classes, the discriminator's head has 3"),
        ({"soft_labels": torch.full((39, 3), 1 / 3)}, DataError,
         "train KEDMI GAN: soft_labels must have shape (40, classes)"),
        ({"soft_labels": torch.ones(40, 3)}, DataError, "train KEDMI GAN: every row of"),
        ({"public_x": torch.rand(40, 1, 28, 28)}, DataError,
         "train KEDMI GAN: images of shape (1, 28, 28) but the generator makes (1, 8, 8)"),
    ],
)
def test_bad_training_arguments(kwargs: dict, error: type, message: str) -> None:
    x, soft = _toy()
    gen, disc = make_ssgan((1, 8, 8), num_classes=3, latent_dim=8)
    args = {"public_x": x, "soft_labels": soft, "steps": 1, **kwargs}
    with pytest.raises(error) as info:
        train_kedmi_gan(gen, disc, args.pop("public_x"), args.pop("soft_labels"), **args)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_training_needs_a_discriminator_with_features() -> None:
    x, soft = _toy()
    gen, _ = make_ssgan((1, 8, 8), num_classes=3, latent_dim=8)
    with pytest.raises(ConfigError, match="features_and_logits"):
        train_kedmi_gan(gen, nn.Linear(2, 3), x, soft, steps=1)
