"""PLG-MI's conditional GAN: conditional BatchNorm, projection discriminator, training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from invbench.errors import ConfigError, DataError
from invbench.models.cgan import (
    ConditionalBatchNorm2d,
    ConditionalGenerator,
    ProjectionDiscriminator,
    make_cgan,
)
from invbench.models.gan import SUPPORTED_HEIGHTS
from invbench.training.cgan import hinge_d_loss, hinge_g_loss, train_plgmi_cgan


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("height", SUPPORTED_HEIGHTS)
def test_shapes_and_ranges(height: int, channels: int) -> None:
    torch.manual_seed(0)
    gen, disc = make_cgan((channels, height, height), num_classes=7, latent_dim=16)
    assert isinstance(gen, ConditionalGenerator) and isinstance(disc, ProjectionDiscriminator)
    assert gen.latent_dim == 16 and gen.num_classes == 7 and disc.num_classes == 7
    gen.eval()
    y = torch.tensor([0, 3, 6])
    with torch.no_grad():
        x = gen(torch.randn(3, 16), y)
        assert x.shape == (3, channels, height, height)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        scores = disc(x, y)
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in disc.modules())


def test_conditional_batchnorm_applies_each_class_scale_and_shift() -> None:
    bn = ConditionalBatchNorm2d(2, num_classes=3).eval()  # running stats: mean 0, var 1
    with torch.no_grad():
        bn.scale.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 3.0], [0.5, -1.0]]))
        bn.shift.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.0, 4.0]]))
    out = bn(torch.ones(3, 2, 1, 1), torch.tensor([0, 1, 2])).flatten(1)
    eps_scale = 1.0 / math.sqrt(1.0 + bn.bn.eps)
    scale = torch.tensor([[1.0, 1.0], [2.0, 3.0], [0.5, -1.0]])
    shift = torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.0, 4.0]])
    want = scale * eps_scale + shift  # gamma[y] * (1 - 0) / sqrt(1 + eps) + beta[y]
    torch.testing.assert_close(out, want)
    fresh = ConditionalBatchNorm2d(2, num_classes=3).train()
    z = torch.randn(8, 2, 3, 3)
    # at initialisation every class is plain (affine-free) BatchNorm
    torch.testing.assert_close(fresh(z, torch.zeros(8, dtype=torch.long)),
                               fresh(z, torch.full((8,), 2)))


def test_generator_output_depends_on_the_class() -> None:
    torch.manual_seed(0)
    gen, _ = make_cgan((1, 8, 8), num_classes=4, latent_dim=8)
    with torch.no_grad():
        for norm in gen.norms:
            norm.scale.weight.normal_(1.0, 0.5)
    gen.eval()
    z = torch.randn(1, 8).repeat(4, 1)
    with torch.no_grad():
        x = gen(z, torch.arange(4))
    assert not torch.allclose(x[0], x[1]) and not torch.allclose(x[2], x[3])


def test_projection_discriminator_is_psi_plus_the_class_projection() -> None:
    torch.manual_seed(0)
    _, disc = make_cgan((1, 28, 28), num_classes=5)
    disc.eval()
    x = torch.rand(4, 1, 28, 28)
    y = torch.tensor([0, 1, 4, 4])
    with torch.no_grad():
        h = disc.features(x)
        want = disc.psi(h).squeeze(1) + (disc.embed(y) * h).sum(1)
        torch.testing.assert_close(disc(x, y), want)
        # the class-independent part is shared: score differences are the projection's
        other = torch.tensor([2, 2, 2, 2])
        diff = disc(x, y) - disc(x, other)
        torch.testing.assert_close(diff, ((disc.embed(y) - disc.embed(other)) * h).sum(1))
    # every weight of the discriminator, the embedding included, is spectrally normalised
    normalised = [m for m in disc.modules() if hasattr(m, "parametrizations")]
    assert any(isinstance(m, nn.Embedding) for m in normalised)
    assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in normalised) == sum(
        isinstance(m, (nn.Conv2d, nn.Linear)) for m in disc.modules()
    )
    disc.train()
    for _ in range(30):  # power iterations converge to the top singular value
        disc.psi(torch.zeros(1, disc.feat_dim))
    w = disc.psi.weight
    assert float(torch.linalg.matrix_norm(w.detach(), ord=2)) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_shape": (1, 16, 16)}, "the conditional GAN supports square images of height"),
        ({"image_shape": (1, 28, 32)}, "the conditional GAN supports square images"),
        ({"num_classes": 0}, "num_classes must be an int >= 1, got 0"),
        ({"latent_dim": True}, "latent_dim must be an int >= 1"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs: dict, message: str) -> None:
    args = {"image_shape": (1, 8, 8), "num_classes": 5, "latent_dim": 16, **kwargs}
    shape = args.pop("image_shape")
    with pytest.raises(ConfigError) as info:
        make_cgan(shape, **args)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


# -- train_plgmi_cgan ------------------------------------------------------------------------


def test_hinge_losses_hand_computed() -> None:
    # real: relu(1 - 2) = 0, relu(1 - 0) = 1 -> 0.5; fake: relu(1 - 3) = 0, relu(1 + 1) = 2 -> 1
    torch.testing.assert_close(
        hinge_d_loss(torch.tensor([2.0, 0.0]), torch.tensor([-3.0, 1.0])), torch.tensor(1.5)
    )
    torch.testing.assert_close(hinge_g_loss(torch.tensor([1.0, -3.0])), torch.tensor(1.0))


def _toy(n: int = 40, k: int = 3) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(k, (n,), generator=g)


class _Counting(nn.Module):
    """A tiny classifier that counts how many images it saw."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, k))
        self.seen = 0

    def forward(self, x: Tensor) -> Tensor:
        self.seen += x.shape[0]
        return self.net(x)


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return other - true


def _trained(seed: int, **kw: object) -> tuple[dict, dict[str, Tensor], _Counting]:
    x, y = _toy()
    torch.manual_seed(0)
    gen, disc = make_cgan((1, 8, 8), num_classes=3, latent_dim=8)
    clf = _Counting()
    losses = train_plgmi_cgan(gen, disc, x, y, classifier=clf, identity_loss=_margin,
                              steps=3, batch_size=8, n_dis=2, seed=seed, **kw)
    return losses, {**gen.state_dict(), **{"d." + k: v for k, v in disc.state_dict().items()}}, clf


def test_training_is_seeded_and_only_the_generator_learns_from_the_classifier() -> None:
    la, a, clf = _trained(0)
    lb, b, _ = _trained(0)
    _, c, _ = _trained(1)
    assert la == lb and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())
    assert set(la) == {"d_loss", "g_loss", "inv_loss", "target_acc"}
    assert all(math.isfinite(v) for v in la.values())
    assert clf.seen == 3 * 8  # one generated batch per generator step
    assert all(p.grad is None for p in clf.parameters())  # the target is never updated


def test_alpha_zero_is_a_plain_cgan_that_never_calls_the_classifier() -> None:
    losses, plain, clf = _trained(0, alpha=0.0)
    assert clf.seen == 0 and losses["inv_loss"] == 0.0
    _, guided, _ = _trained(0)
    assert any(not torch.equal(plain[k], guided[k]) for k in plain if not k.startswith("d."))


class _Bands(nn.Module):
    """Class k's logit is 10x the mean brightness of band k of the image (rows 0-2, 3-5, 6-7)."""

    def forward(self, x: Tensor) -> Tensor:
        rows = x.mean(dim=(1, 3))
        return 10.0 * torch.stack([rows[:, :3].mean(1), rows[:, 3:6].mean(1),
                                   rows[:, 6:].mean(1)], dim=1)


def test_the_max_margin_term_pulls_samples_into_their_class() -> None:
    x, y = _toy(n=64)
    clf = _Bands()

    def accuracy(alpha: float) -> float:
        torch.manual_seed(0)
        gen, disc = make_cgan((1, 8, 8), num_classes=3, latent_dim=8)
        train_plgmi_cgan(gen, disc, x, y, classifier=clf, identity_loss=_margin, steps=80,
                         batch_size=16, n_dis=1, alpha=alpha, lr=2e-3, seed=0)
        with torch.no_grad():
            lab = torch.arange(3).repeat_interleave(20)
            imgs = gen(torch.randn(60, 8, generator=torch.Generator().manual_seed(1)), lab)
            return float((clf(imgs).argmax(1) == lab).float().mean())

    # the real images are noise whose bands say nothing of their labels: only the
    # max-margin term can make G(z, y) bright in band y
    guided, plain = accuracy(1.0), accuracy(0.0)
    assert guided > 0.9 and guided > plain + 0.3, (guided, plain)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"steps": 0}, ConfigError, "steps must be an int >= 1, got 0"),
        ({"n_dis": 0}, ConfigError, "n_dis must be an int >= 1, got 0"),
        ({"alpha": -1.0}, ConfigError, "alpha must be a number >= 0"),
        ({"betas": (0.0, 1.0)}, ConfigError, "betas must be two numbers in [0, 1)"),
        ({"y": torch.full((40,), 3)}, DataError,
         "train cGAN: labels must lie in [0, 2] (the generator's classes), got [3, 3]"),
        ({"y": torch.zeros(39, dtype=torch.long)}, DataError, "train cGAN: 40 images but 39"),
        ({"x": torch.rand(40, 1, 28, 28)}, DataError,
         "train cGAN: images of shape (1, 28, 28) but the generator makes (1, 8, 8)"),
    ],
)
def test_bad_training_arguments(kwargs: dict, error: type, message: str) -> None:
    x, y = _toy()
    gen, disc = make_cgan((1, 8, 8), num_classes=3, latent_dim=8)
    args = {"x": x, "y": y, "steps": 1, **kwargs}
    with pytest.raises(error) as info:
        train_plgmi_cgan(gen, disc, args.pop("x"), args.pop("y"), classifier=_Counting(),
                         identity_loss=_margin, **args)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
