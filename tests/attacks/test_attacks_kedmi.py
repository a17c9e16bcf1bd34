"""KEDMI (Chen et al. 2021) on digits: a target-aware GAN from public classes 5-9, target 0-4."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import judged_success
from torch import Tensor, nn

import invbench.training.kedmi
from invbench.access import BlackBox, LabelOnly, WhiteBox
from invbench.attacks.kedmi import KEDMI
from invbench.cache import Cache
from invbench.data import Protocol
from invbench.errors import AccessError, ConfigError
from invbench.models import make_classifier
from invbench.registry import ATTACKS

SHAPE = (1, 8, 8)
K = 5
PER_LABEL = 10
#: a small prior (30 generator steps, 2 discriminator steps each; defaults 300 x 5) keeps
#: this file under a minute of CPU and is already recognisable on 8x8 digits
GAN = {"gan_steps": 30, "n_critic": 2}


def _white(model: nn.Module) -> WhiteBox:
    return WhiteBox(model, num_classes=K, image_shape=SHAPE)


def _reuse(attack: KEDMI, prepared: KEDMI) -> KEDMI:
    attack.prior_modules_, attack.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
    return attack


@pytest.fixture(scope="module")
def setup(digits_protocol: Protocol, digits_target: nn.Module):
    """(protocol, target, KEDMI prepared on the public split, its 5 x 10 reconstructions)."""
    attack = KEDMI(**GAN)  # default search: 300 Adam steps, 4 draws per label and step
    attack.prepare(digits_protocol.public, access=_white(digits_target), seed=0)
    rec = attack.invert(_white(digits_target), list(range(K)), per_label=PER_LABEL, seed=0)
    return digits_protocol, digits_target.eval(), attack, rec


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> list[Tensor]:
    """Records the soft labels every GAN training run gets."""
    seen: list[Tensor] = []
    real = invbench.training.kedmi.train_kedmi_gan

    def wrapped(generator, discriminator, x, soft, **kwargs):
        seen.append(soft)
        return real(generator, discriminator, x, soft, **kwargs)

    monkeypatch.setattr(invbench.training.kedmi, "train_kedmi_gan", wrapped)
    return seen


def test_registered() -> None:
    assert ATTACKS.get("kedmi") is KEDMI
    assert KEDMI.access == "white-box" and KEDMI.needs_public and KEDMI.USES_TARGET


def test_beats_chance_under_success_and_the_learned_prior_is_what_helps(
    setup, digits_judges, noise_success: float
) -> None:
    proto, target, attack, rec = setup
    assert rec.images.shape == (K * PER_LABEL, *SHAPE)
    assert rec.labels.tolist() == [c for c in range(K) for _ in range(PER_LABEL)]
    assert float(rec.scores.mean()) > 0.9  # the target recognises the requested labels
    success = judged_success(rec, digits_judges)
    # the same search in an untrained prior (one generator step)
    untrained = KEDMI(gan_steps=1, n_critic=1)
    untrained.prepare(proto.public, access=_white(target), seed=0)
    ablated = judged_success(
        untrained.invert(_white(target), list(range(K)), per_label=PER_LABEL, seed=0),
        digits_judges,
    )
    # measured: success 0.42, 0.0 with the untrained prior, noise 0.0
    assert success > noise_success + 0.2, f"success {success:.2f} vs noise {noise_success:.2f}"
    assert success > ablated + 0.2, f"success {success:.2f} vs untrained prior {ablated:.2f}"


def test_one_learned_distribution_per_label_moves_away_from_its_start(setup) -> None:
    _, _, attack, _ = setup
    dist = attack.distribution_
    assert attack.distribution_labels_.tolist() == list(range(K))
    assert dist.mu.shape == (K, attack.params.latent_dim)
    assert not dist.mu.requires_grad and not dist.log_sigma.requires_grad
    # the search starts at mu = 0, log sigma = 0.5 (the reference's log_var = 1)
    assert float(dist.mu.norm(dim=1).min()) > 0.5
    start = math.log(attack.params.init_std)
    assert float((dist.log_sigma - start).abs().mean()) > 0.05
    assert float(torch.cdist(dist.mu, dist.mu).triu(1).max()) > 0.5  # labels differ
    history = attack.history_
    assert history[-1]["step"] == attack.params.iterations
    assert history[-1]["identity"] < 0.5 * history[0]["identity"]


def test_prepare_queries_every_public_image_once_warm_or_cold(setup, spy, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-kedmi")
    access = _white(target)
    attack = KEDMI(gan_steps=2, gan_batch_size=8)
    attack.prepare(proto.public, access=access, cache=cache, seed=0)
    n = len(proto.public)
    assert attack.prepare_queries_ == n and access.queries == n
    assert len(spy) == 1 and spy[0].shape == (n, K)
    with torch.inference_mode():
        want = torch.softmax(target(proto.public.x), dim=1)
    torch.testing.assert_close(spy[0], want)  # the target's soft labels of the public images
    assert attack.prior_meta_["prepare_queries"] == n
    assert "target" in attack.prior_meta_["parts"]  # the prior belongs to this target
    assert not any(p.requires_grad for p in attack.generator_.parameters())
    assert not any(p.requires_grad for p in attack.discriminator_.parameters())

    warm_access = _white(target)
    warm = KEDMI(gan_steps=2, gan_batch_size=8, iterations=3)  # search params: same prior
    warm.prepare(proto.public, access=warm_access, cache=cache, seed=0)
    assert len(spy) == 1  # loaded, not trained
    assert warm.prepare_queries_ == n and warm_access.queries == n  # charged as if queried
    for name, t in attack.discriminator_.state_dict().items():
        assert torch.equal(t, warm.discriminator_.state_dict()[name]), name


def test_another_target_trains_another_prior(setup, spy, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-kedmi")
    KEDMI(gan_steps=2, gan_batch_size=8).prepare(
        proto.public, access=_white(target), cache=cache, seed=0
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        other = make_classifier("cnn-s", image_shape=SHAPE, num_classes=K).eval()
    again = KEDMI(gan_steps=2, gan_batch_size=8)
    again.prepare(proto.public, access=_white(other), cache=cache, seed=0)
    assert len(spy) == 2 and not torch.allclose(spy[0], spy[1])
    assert again.prepare_queries_ == len(proto.public)


def test_deterministic_under_seed_and_query_count(setup) -> None:
    _, target, prepared, _ = setup
    attack = _reuse(KEDMI(**GAN, iterations=20, samples=3, n_samples=4), prepared)
    a = attack.invert(_white(target), [3, 1], per_label=2, seed=5)
    b = attack.invert(_white(target), [3, 1], per_label=2, seed=5)
    c = attack.invert(_white(target), [3, 1], per_label=2, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.images, c.images)
    assert a.labels.tolist() == [3, 3, 1, 1]
    # two distinct labels -> two distributions; the per_label images are two of their draws
    assert attack.distribution_labels_.tolist() == [1, 3]
    assert not torch.equal(a.images[0], a.images[1])
    assert a.queries == 20 * 2 * 3 + 4 * 4  # search batches + n_samples draws per image


def test_the_best_of_n_samples_draws_is_kept(setup) -> None:
    _, target, prepared, _ = setup

    def run(n_samples: int):
        attack = _reuse(KEDMI(**GAN, iterations=5, n_samples=n_samples), prepared)
        return attack.invert(_white(target), [0, 1, 2, 3, 4], seed=2)

    one, five = run(1), run(5)
    # the first draw of the 5-draw run is the 1-draw run's (same stream, same search)
    assert bool((five.scores >= one.scores - 1e-6).all())
    assert bool((five.scores > one.scores + 1e-4).any())


def test_invert_before_prepare_is_a_config_error(setup) -> None:
    _, target, *_ = setup
    with pytest.raises(ConfigError, match="call prepare"):
        KEDMI().invert(_white(target), [0], seed=0)


@pytest.mark.parametrize("level", [BlackBox, LabelOnly])
def test_refuses_weaker_access(setup, level) -> None:
    _, target, attack, _ = setup
    access = level.local(target, num_classes=K, image_shape=SHAPE)
    with pytest.raises(AccessError, match="needs white-box access"):
        attack.invert(access, [0], seed=0)
    assert access.queries == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"iterations": 0},
         "The 'iterations' parameter of attack 'kedmi' must be >= 1. Got 0 instead."),
        ({"samples": 0}, "The 'samples' parameter of attack 'kedmi' must be >= 1."),
        ({"init_std": 0.0}, "The 'init_std' parameter of attack 'kedmi' must be > 0"),
        ({"entropy_weight": -1.0}, "The 'entropy_weight' parameter of attack 'kedmi'"),
        ({"identity_loss": "hinge"}, "The 'identity_loss' parameter of attack 'kedmi'"),
    ],
)
def test_bad_params_raise_config_error(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        KEDMI(**params)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_lomma_plug_in_changes_the_identity_loss(setup, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-kedmi")
    small = {"gan_steps": 2, "gan_batch_size": 8, "iterations": 4, "samples": 1,
             "n_samples": 1, "identity_loss": "logit"}
    attack = KEDMI(**small, augment="lomma", surrogates=1, distill_epochs=1)
    access = _white(target)
    attack.prepare(proto.public, access=access, cache=cache, seed=0)
    n_public = len(proto.public)
    assert attack.prepare_queries_ >= 2 * n_public  # GAN soft labels + LOMMA's distillation
    assert len(attack.augmentation_.surrogates_) == 1
    plain = KEDMI(**small)
    plain.prepare(proto.public, access=_white(target), cache=cache, seed=0)
    assert plain.prepare_queries_ == n_public  # the same prior (cache hit), no LOMMA
    lab = torch.tensor([0, 1])
    fake = attack.generator_(torch.zeros(2, attack.params.latent_dim))
    with_aug = attack.identity_loss(_white(target), fake, lab)
    without = plain.identity_loss(_white(target), fake, lab)
    torch.testing.assert_close(without, -target(fake).gather(1, lab.view(-1, 1)).squeeze(1))
    assert not torch.allclose(with_aug, without)  # the surrogates and p_reg change the loss
    rec = attack.invert(access, [0, 1], per_label=1, seed=0)
    assert rec.queries == 4 * 2 + 2  # invert's own queries only


def test_clip_bounds_every_latent_it_samples(setup) -> None:
    _, target, prepared, _ = setup
    attack = _reuse(KEDMI(**GAN, iterations=5, clip=1e-4), prepared)
    rec = attack.invert(_white(target), [0, 2], per_label=2, seed=0)
    with torch.inference_mode():
        centre = attack.generator_(torch.zeros(1, attack.params.latent_dim))
    # every latent lies within 1e-4 of the origin, so every image is G(0) up to rounding
    torch.testing.assert_close(rec.images, centre.expand_as(rec.images), atol=1e-3, rtol=0)
    free = _reuse(KEDMI(**GAN, iterations=5), prepared).invert(_white(target), [0, 2], seed=0)
    assert float((free.images - centre).abs().max()) > 0.1
