"""PLG-MI (Yuan et al. 2023) on digits: a cGAN on public classes 5-9 pseudo-labelled 0-4."""

from __future__ import annotations

import pytest
import torch
from conftest import judged_success
from torch import Tensor, nn

import invbench.training.cgan
from invbench.access import BlackBox, LabelOnly, WhiteBox
from invbench.attacks.plg_mi import PLGMI, top_n_selection
from invbench.cache import Cache
from invbench.data import Protocol
from invbench.errors import AccessError, ConfigError
from invbench.models import make_classifier
from invbench.registry import ATTACKS

SHAPE = (1, 8, 8)
K = 5
PER_LABEL = 10
#: a small prior (150 generator steps, 2 discriminator steps each; defaults 600 x 5) and a
#: short search (100 steps; default 300) keep this file well under a minute of CPU
GAN = {"gan_steps": 150, "n_dis": 2}
SEARCH = {"iterations": 100}


def _white(model: nn.Module) -> WhiteBox:
    return WhiteBox(model, num_classes=K, image_shape=SHAPE)


def _reuse(attack: PLGMI, prepared: PLGMI) -> PLGMI:
    attack.prior_modules_, attack.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
    return attack


@pytest.fixture(scope="module")
def setup(digits_protocol: Protocol, digits_target: nn.Module):
    """(protocol, target, PLG-MI prepared on the public split, its 5 x 10 reconstructions)."""
    attack = PLGMI(**GAN, **SEARCH)
    attack.prepare(digits_protocol.public, access=_white(digits_target), seed=0)
    rec = attack.invert(_white(digits_target), list(range(K)), per_label=PER_LABEL, seed=0)
    return digits_protocol, digits_target.eval(), attack, rec


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Tensor, Tensor]]:
    """Records the pseudo-labelled images and labels every cGAN training run gets."""
    seen: list[tuple[Tensor, Tensor]] = []
    real = invbench.training.cgan.train_plgmi_cgan

    def wrapped(generator, discriminator, x, y, **kwargs):
        seen.append((x, y))
        return real(generator, discriminator, x, y, **kwargs)

    monkeypatch.setattr(invbench.training.cgan, "train_plgmi_cgan", wrapped)
    return seen


def test_registered() -> None:
    assert ATTACKS.get("plg-mi") is PLGMI
    assert PLGMI.access == "white-box" and PLGMI.needs_public and PLGMI.USES_TARGET
    assert PLGMI().params.identity_loss == "max-margin"


def test_beats_chance_under_success_and_the_learned_prior_is_what_helps(
    setup, digits_judges, noise_success: float
) -> None:
    proto, target, attack, rec = setup
    assert rec.images.shape == (K * PER_LABEL, *SHAPE)
    assert rec.labels.tolist() == [c for c in range(K) for _ in range(PER_LABEL)]
    assert float(rec.images.min()) >= 0.0 and float(rec.images.max()) <= 1.0
    # the target recognises most requested labels under augmentation (measured: 0.77)
    assert float(rec.scores.mean()) > 0.6
    success = judged_success(rec, digits_judges)
    # the same search in an untrained cGAN (one generator step)
    untrained = PLGMI(gan_steps=1, n_dis=1, **SEARCH)
    untrained.prepare(proto.public, access=_white(target), seed=0)
    ablated = judged_success(
        untrained.invert(_white(target), list(range(K)), per_label=PER_LABEL, seed=0),
        digits_judges,
    )
    # measured: success 0.22-0.28 at these settings (0.44 at 600 steps), 0.0 untrained, noise 0.0
    assert success > noise_success + 0.12, f"success {success:.2f} vs noise {noise_success:.2f}"
    assert success > ablated + 0.12, f"success {success:.2f} vs untrained prior {ablated:.2f}"


def test_top_n_selection_keeps_each_class_most_confident_images(setup) -> None:
    proto, target, *_ = setup
    x = proto.public.x
    index, labels, conf = top_n_selection(target, x, num_classes=K, top_n=7, batch_size=50)
    assert index.shape == labels.shape == conf.shape == (K * 7,)
    assert labels.tolist() == [c for c in range(K) for _ in range(7)]
    with torch.inference_mode():
        probs = torch.softmax(target(x), dim=1)
    for c in range(K):
        rows = index[labels == c]
        torch.testing.assert_close(conf[labels == c], probs[rows, c])
        # nothing left out is more confident than the least confident kept image
        rest = torch.ones(len(x), dtype=torch.bool)
        rest[rows] = False
        assert float(probs[rest, c].max()) <= float(probs[rows, c].min()) + 1e-6
        assert bool((conf[labels == c].diff() <= 1e-7).all())  # most confident first
    everything, _, _ = top_n_selection(target, x[:3], num_classes=K, top_n=10)
    assert everything.shape == (K * 3,)  # top_n > N keeps every image for every class
    with pytest.raises(ConfigError, match="top_n must be an int >= 1"):
        top_n_selection(target, x, num_classes=K, top_n=0)


def test_prepare_queries_are_counted_warm_or_cold(setup, spy, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-plg-mi")
    access = _white(target)
    attack = PLGMI(gan_steps=3, gan_batch_size=8, n_dis=1, top_n=20)
    attack.prepare(proto.public, access=access, cache=cache, seed=0)
    n = len(proto.public)
    # one query per public image for the pseudo-labels, one batch per generator step
    assert attack.prepare_queries_ == n + 3 * 8 == access.queries
    assert len(spy) == 1
    x_sel, y_sel = spy[0]
    assert x_sel.shape == (K * 20, *SHAPE)
    assert y_sel.tolist() == [c for c in range(K) for _ in range(20)]
    assert attack.prior_meta_["prepare_queries"] == n + 24
    assert attack.prior_meta_["pseudo_labelled"] == K * 20
    assert "target" in attack.prior_meta_["parts"]  # the prior belongs to this target
    assert not any(p.requires_grad for p in attack.generator_.parameters())
    assert not any(p.requires_grad for p in attack.discriminator_.parameters())

    warm_access = _white(target)
    warm = PLGMI(gan_steps=3, gan_batch_size=8, n_dis=1, top_n=20, iterations=2, lr=0.5)
    warm.prepare(proto.public, access=warm_access, cache=cache, seed=0)
    assert len(spy) == 1  # search parameters differ, the prior is loaded, not trained
    assert warm.prepare_queries_ == n + 24 == warm_access.queries  # charged as if queried
    for name, t in attack.generator_.state_dict().items():
        assert torch.equal(t, warm.generator_.state_dict()[name]), name

    PLGMI(gan_steps=3, gan_batch_size=8, n_dis=1, top_n=10).prepare(
        proto.public, access=_white(target), cache=cache, seed=0
    )
    assert len(spy) == 2  # top_n shapes the prior: another one


def test_another_target_trains_another_prior(setup, spy, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-plg-mi")
    small = {"gan_steps": 2, "gan_batch_size": 8, "n_dis": 1, "top_n": 20}
    PLGMI(**small).prepare(proto.public, access=_white(target), cache=cache, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        other = make_classifier("cnn-s", image_shape=SHAPE, num_classes=K).eval()
    PLGMI(**small).prepare(proto.public, access=_white(other), cache=cache, seed=0)
    assert len(spy) == 2
    assert not torch.equal(spy[0][0], spy[1][0])  # the other target picks other images


def test_deterministic_under_seed_and_query_count(setup) -> None:
    _, target, prepared, _ = setup
    attack = _reuse(PLGMI(**GAN, iterations=6, restarts=3, views=2, select_views=4), prepared)
    a = attack.invert(_white(target), [3, 1], per_label=2, seed=5)
    b = attack.invert(_white(target), [3, 1], per_label=2, seed=5)
    c = attack.invert(_white(target), [3, 1], per_label=2, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.images, c.images)
    assert a.labels.tolist() == [3, 3, 1, 1]
    m = 4 * 3  # images x restarts
    assert a.queries == 6 * m * 2 + (4 + 1) * m  # search views + selection views


def test_initial_selection_starts_from_the_most_confident_candidates(setup) -> None:
    _, target, prepared, _ = setup

    def run(candidates: int):
        attack = _reuse(PLGMI(**GAN, iterations=1, lr=1e-6, restarts=2, select_views=0,
                              candidates=candidates), prepared)
        return attack.invert(_white(target), list(range(K)), per_label=2, seed=3)

    plain, selected = run(0), run(40)
    assert selected.queries == plain.queries + 40 * K * 2  # one query per candidate
    # starting from the 2 best of 40 beats starting from 2 random latents
    assert float(selected.scores.mean()) > float(plain.scores.mean())


def test_sample_prior_draws_every_class(setup) -> None:
    _, _, attack, _ = setup
    samples = attack.sample_prior(40, torch.Generator().manual_seed(0))
    assert samples.shape == (40, *SHAPE) and not samples.requires_grad
    assert torch.equal(samples, attack.sample_prior(40, torch.Generator().manual_seed(0)))
    with pytest.raises(ConfigError, match="n must be an int >= 1"):
        attack.sample_prior(0, torch.Generator())
    with pytest.raises(ConfigError, match="no GAN prior yet"):
        PLGMI().sample_prior(2, torch.Generator())


def test_invert_before_prepare_is_a_config_error(setup) -> None:
    _, target, *_ = setup
    with pytest.raises(ConfigError, match="call prepare"):
        PLGMI().invert(_white(target), [0], seed=0)


@pytest.mark.parametrize("level", [BlackBox, LabelOnly])
def test_refuses_weaker_access(setup, level) -> None:
    proto, target, attack, _ = setup
    access = level.local(target, num_classes=K, image_shape=SHAPE)
    with pytest.raises(AccessError, match="needs white-box access"):
        attack.invert(access, [0], seed=0)
    with pytest.raises(AccessError, match="needs white-box access"):
        PLGMI(gan_steps=1).prepare(proto.public, access=access, seed=0)
    assert access.queries == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"top_n": 0}, "The 'top_n' parameter of attack 'plg-mi' must be >= 1. Got 0 instead."),
        ({"views": 0}, "The 'views' parameter of attack 'plg-mi' must be >= 1."),
        ({"alpha": -0.1}, "The 'alpha' parameter of attack 'plg-mi' must be >= 0"),
        ({"identity_loss": "hinge"}, "The 'identity_loss' parameter of attack 'plg-mi'"),
        ({"image_augment": "rotate"}, "unknown augmentation 'rotate'"),
        ({"gan_augment": "crop,zoom"}, "unknown augmentation 'zoom'"),
    ],
)
def test_bad_params_raise_config_error(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        PLGMI(**params)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_lomma_plug_in_changes_the_search_loss_not_the_prior(setup, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-plg-mi")
    small = {"gan_steps": 2, "gan_batch_size": 8, "n_dis": 1, "top_n": 20, "iterations": 3,
             "restarts": 1, "select_views": 0, "identity_loss": "logit"}
    attack = PLGMI(**small, augment="lomma", surrogates=1, distill_epochs=1)
    access = _white(target)
    attack.prepare(proto.public, access=access, cache=cache, seed=0)
    assert len(attack.augmentation_.surrogates_) == 1
    plain = PLGMI(**small)
    plain.prepare(proto.public, access=_white(target), cache=cache, seed=0)
    assert attack.prepare_queries_ > plain.prepare_queries_  # + LOMMA's distillation
    for name, t in attack.generator_.state_dict().items():  # one cGAN for both (cache hit)
        assert torch.equal(t, plain.generator_.state_dict()[name]), name
    lab = torch.tensor([0, 1])
    fake = attack.generator_(torch.zeros(2, attack.params.latent_dim), lab)
    with_aug = attack.identity_loss(_white(target), fake, lab)
    without = plain.identity_loss(_white(target), fake, lab)
    torch.testing.assert_close(without, -target(fake).gather(1, lab.view(-1, 1)).squeeze(1))
    assert not torch.allclose(with_aug, without)  # the surrogates and p_reg change the loss
    rec = attack.invert(access, [0, 1], per_label=1, seed=0)
    assert rec.queries == 3 * 2 * 2 + 2  # invert's own: iterations x images x views + 1 view
