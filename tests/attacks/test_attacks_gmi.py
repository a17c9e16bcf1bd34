"""GMI (Zhang et al. 2020) on digits: a WGAN-GP prior from public classes 5-9, target on 0-4."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

import invbench.training
from invbench.access import BlackBox, LabelOnly, WhiteBox
from invbench.attacks import GMI, MIFace
from invbench.cache import Cache
from invbench.data import Protocol, Split
from invbench.errors import AccessError, ConfigError, DataError
from invbench.models import make_classifier
from invbench.registry import ATTACKS
from invbench.training import train_classifier

SHAPE = (1, 8, 8)
K = 5
GAN_STEPS = 300  # enough for a recognisable digit prior; the default is larger


@pytest.fixture(scope="module")
def setup(digits_protocol: Protocol, digits_target: nn.Module,
          tmp_path_factory: pytest.TempPathFactory):
    """(protocol, target cnn-s, independent evaluator resnet, prepared GMI, cache)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        evaluator = make_classifier("resnet", image_shape=SHAPE, num_classes=K)
    train_classifier(evaluator, digits_protocol.private_train.x, digits_protocol.private_train.y,
                     epochs=5, seed=1)
    cache = Cache(tmp_path_factory.mktemp("gmi-cache")).view("attack-gmi")
    attack = GMI(gan_steps=GAN_STEPS, iterations=150)
    attack.prepare(digits_protocol.public, access=_white(digits_target), cache=cache, seed=0)
    return digits_protocol, digits_target.eval(), evaluator.eval(), attack, cache


def _white(model: nn.Module) -> WhiteBox:
    return WhiteBox(model, num_classes=K, image_shape=SHAPE)


def _nearest_private(images: Tensor, labels: Tensor, private: Split) -> Tensor:
    """L2 distance of each image to the nearest private training image of its class."""
    out = []
    for img, lab in zip(images, labels, strict=True):
        same = private.x[private.y == lab].flatten(1)
        out.append(torch.cdist(img.flatten().view(1, -1), same).min())
    return torch.stack(out)


class _Counting(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.inner(x)


def test_registered() -> None:
    assert ATTACKS.get("gmi") is GMI
    assert GMI.access == "white-box" and GMI.needs_public


def test_reconstructions_fool_an_independent_model_and_beat_mi_face(setup) -> None:
    proto, target, evaluator, attack, _ = setup
    labels = list(range(K))
    rec = attack.invert(_white(target), labels, per_label=4, seed=0)
    assert rec.images.shape == (20, *SHAPE)
    with torch.inference_mode():
        acc = float((evaluator(rec.images).argmax(1) == rec.labels).float().mean())
    assert acc >= 0.7, f"independent-model accuracy {acc:.2f} is not well above chance (0.2)"

    base = MIFace(steps=150).invert(_white(target), labels, per_label=4, seed=0)
    d_gmi = _nearest_private(rec.images, rec.labels, proto.private_train).mean()
    d_mif = _nearest_private(base.images, base.labels, proto.private_train).mean()
    assert float(d_gmi) < 0.9 * float(d_mif), (float(d_gmi), float(d_mif))


def test_shapes_scores_and_one_batched_forward_per_step(setup) -> None:
    _, target, _, prepared, _ = setup
    attack = GMI(iterations=7, restarts=3, gan_steps=GAN_STEPS)
    attack.prior_modules_, attack.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
    counting = _Counting(target)
    rec = attack.invert(_white(counting), [4, 0], per_label=2, seed=0)
    assert rec.images.shape == (4, *SHAPE) and rec.labels.tolist() == [4, 4, 0, 0]
    assert float(rec.images.min()) >= 0.0 and float(rec.images.max()) <= 1.0
    assert float(rec.scores.min()) >= 0.0 and float(rec.scores.max()) <= 1.0
    assert counting.calls == 7 + 1  # every step: 12 latents in one pass; + final scoring
    assert rec.queries == 8 * 12


def test_best_restart_is_kept(setup) -> None:
    _, target, _, prepared, _ = setup

    def run(restarts: int):
        attack = GMI(iterations=5, restarts=restarts, gan_steps=GAN_STEPS)
        attack.prior_modules_, attack.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
        return attack.invert(_white(target), [0, 1, 2, 3], seed=2)

    one, five = run(1), run(5)
    # restart 0 of the 5-restart run is the 1-restart run (same latent stream)
    assert bool((five.scores >= one.scores - 1e-5).all())
    assert bool((five.scores > one.scores + 1e-5).any())


def test_deterministic_under_seed(setup) -> None:
    _, target, _, attack, _ = setup
    a = attack.invert(_white(target), [1, 3], per_label=2, seed=5)
    b = attack.invert(_white(target), [1, 3], per_label=2, seed=5)
    c = attack.invert(_white(target), [1, 3], per_label=2, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.images, c.images)


def test_prior_is_trained_on_public_data_only(setup, monkeypatch, tmp_path) -> None:
    proto, target, *_ = setup
    access = _white(target)
    seen: list[Tensor] = []
    real = invbench.training.train_wgan_gp

    def spy(generator, discriminator, x, **kwargs):
        seen.append(x)
        return real(generator, discriminator, x, **kwargs)

    monkeypatch.setattr(invbench.training, "train_wgan_gp", spy)
    attack = GMI(gan_steps=2, gan_batch_size=8)
    cache = Cache(tmp_path)
    attack.prepare(proto.public, access=access, cache=cache, seed=0)
    assert len(seen) == 1 and torch.equal(seen[0], proto.public.x)
    assert set(proto.public.y.unique().tolist()) == {5, 6, 7, 8, 9}
    # no private training image is among what the GAN saw
    dist = torch.cdist(proto.private_train.x.flatten(1), seen[0].flatten(1))
    assert float(dist.min()) > 0.0
    # the cache key is built from the public split's content, not the private one
    parts = attack.prior_parts_
    assert attack.prior_meta_["parts"] == parts
    assert parts["public"] == proto.public.digest()
    assert parts["public"] != proto.private_train.digest()
    assert parts["image_shape"] == list(SHAPE) and parts["seed"] == 0

    # same prior parameters again: a cache hit, no training; search parameters do not matter
    again = GMI(gan_steps=2, gan_batch_size=8, iterations=10, lr=0.5)
    again.prepare(proto.public, access=access, cache=cache, seed=0)
    assert len(seen) == 1
    for name, t in attack.generator_.state_dict().items():
        assert torch.equal(t, again.generator_.state_dict()[name]), name
    # a prior parameter or the seed changes the key
    GMI(gan_steps=3, gan_batch_size=8).prepare(proto.public, access=access, cache=cache)
    GMI(gan_steps=2, gan_batch_size=8).prepare(proto.public, access=access, cache=cache,
                                               seed=1)
    assert len(seen) == 3
    # preparing the same object again on the same data reuses its prior even without a cache
    attack.prepare(proto.public, access=access, seed=0)
    assert len(seen) == 3


def test_invert_before_prepare_is_a_config_error(setup) -> None:
    _, target, *_ = setup
    with pytest.raises(ConfigError, match="call prepare"):
        GMI().invert(_white(target), [0], seed=0)


def test_prepare_rejects_public_images_of_the_wrong_shape(setup) -> None:
    proto, *_ = setup
    with torch.random.fork_rng(devices=[]):
        wide = make_classifier("cnn-m", image_shape=(1, 28, 28), num_classes=K)
    access = WhiteBox(wide, num_classes=K, image_shape=(1, 28, 28))
    with pytest.raises(DataError, match="public images are"):
        GMI(gan_steps=1).prepare(proto.public, access=access)


def test_prior_queries_no_target_so_its_entry_is_shared_and_frozen(setup, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-gmi")
    access = _white(target)
    attack = GMI(gan_steps=2, gan_batch_size=8)
    attack.prepare(proto.public, access=access, cache=cache, seed=0)
    assert attack.prepare_queries_ == 0 and access.queries == 0
    assert "target" not in attack.prior_meta_["parts"]  # shared by every target
    assert not any(p.requires_grad for p in attack.generator_.parameters())
    assert not any(p.requires_grad for p in attack.discriminator_.parameters())


@pytest.mark.parametrize("level", [BlackBox, LabelOnly])
def test_refuses_weaker_access(setup, level) -> None:
    _, target, _, attack, _ = setup
    access = level.local(target, num_classes=K, image_shape=SHAPE)
    with pytest.raises(AccessError, match="needs white-box access"):
        attack.invert(access, [0], seed=0)
    assert access.queries == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"iterations": 0},
         "The 'iterations' parameter of attack 'gmi' must be >= 1. Got 0 instead."),
        ({"momentum": 1.0}, "The 'momentum' parameter of attack 'gmi' must be < 1.0. Got 1.0"),
        ({"lambda_id": -1.0},
         "The 'lambda_id' parameter of attack 'gmi' must be >= 0.0. Got -1.0 instead."),
        ({"identity_loss": "hinge"}, "The 'identity_loss' parameter of attack 'gmi'"),
        ({"restart": 2}, "attack 'gmi' has no parameter 'restart'; its parameters are:"),
    ],
)
def test_bad_params_raise_config_error(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        GMI(**params)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_lomma_plug_in_distils_surrogates_from_this_target(setup, tmp_path) -> None:
    proto, target, *_ = setup
    cache = Cache(tmp_path).view("attack-gmi")
    access = _white(target)
    attack = GMI(gan_steps=2, gan_batch_size=8, iterations=5, restarts=1, augment="lomma",
                 identity_loss="logit", surrogates=1, distill_epochs=1)
    attack.prepare(proto.public, access=access, cache=cache, seed=0)
    n_public = len(proto.public)
    assert attack.prepare_queries_ >= n_public  # soft labels (and p_reg features) of public images
    assert len(attack.augmentation_.surrogates_) == 1
    plain = GMI(gan_steps=2, gan_batch_size=8, iterations=5, restarts=1, identity_loss="logit")
    plain.prepare(proto.public, access=_white(target), cache=cache, seed=0)
    assert plain.prepare_queries_ == 0  # the GAN prior is shared; only LOMMA queried
    lab = torch.tensor([0, 1])
    fake = attack.generator_(torch.zeros(2, attack.params.latent_dim))
    with_aug = attack.identity_loss(_white(target), fake, lab)
    without = plain.identity_loss(_white(target), fake, lab)
    assert not torch.allclose(with_aug, without)  # the surrogates and p_reg change the loss
    rec = attack.invert(access, [0, 1], per_label=1, seed=0)
    assert rec.queries == 2 * 5 + 2  # invert's own queries only


def test_lomma_prior_samples_come_from_the_gan(setup) -> None:
    proto, target, _, prepared, _ = setup
    attack = GMI(gan_steps=GAN_STEPS, iterations=2, restarts=1, augment="lomma",
                 identity_loss="logit", surrogates=1, distill_epochs=1, prior_samples=24)
    attack.prior_modules_, attack.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
    access = _white(target)
    attack.prepare(proto.public, access=access, seed=0)  # reuses the prior, distils LOMMA
    meta = attack.augmentation_.meta_
    assert meta["distill_images"] == len(proto.public) + 24
    assert attack.prepare_queries_ >= len(proto.public) + 24  # soft labels of the samples too
    samples = attack.sample_prior(5, torch.Generator().manual_seed(0))
    assert samples.shape == (5, *SHAPE) and not samples.requires_grad
    again = attack.sample_prior(5, torch.Generator().manual_seed(0))
    assert torch.equal(samples, again)
    with pytest.raises(ConfigError, match="n must be an int >= 1"):
        attack.sample_prior(0, torch.Generator())
    with pytest.raises(ConfigError, match="no GAN prior yet"):
        GMI().sample_prior(2, torch.Generator())


def test_gmi_and_gmi_with_lomma_beat_chance_under_success(
    setup, digits_judges, noise_success: float
) -> None:
    from conftest import judged_success

    proto, target, _, prepared, _ = setup
    scores = {}
    for name, extra in (("gmi", {}), ("gmi+lomma", {"augment": "lomma", "identity_loss": "logit",
                                                    "surrogates": 2, "distill_epochs": 5})):
        attack = GMI(gan_steps=GAN_STEPS, iterations=150, restarts=2, **extra)
        attack.prior_modules_, attack.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
        attack.prepare(proto.public, access=_white(target), seed=0)  # LOMMA distils here
        rec = attack.invert(_white(target), list(range(K)), per_label=10, seed=0)
        scores[name] = judged_success(rec, digits_judges)
    # measured: gmi 0.44, gmi+lomma 0.60; noise 0.0
    for name, success in scores.items():
        assert success > noise_success + 0.2, f"{name}: success {success:.2f} vs noise"
