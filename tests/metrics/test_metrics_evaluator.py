"""The evaluation model on digits, the references, determinism and the evaluator cache."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits

import invbench.training
from invbench.bench.cache import Cache
from invbench.data.protocol import ImageData, Protocol, make_protocol
from invbench.errors import ConfigError, DataError
from invbench.metrics import (
    Evaluator,
    derive_seed,
    evaluate,
    reference_reconstructions,
    target_accuracy,
    train_evaluator,
)
from invbench.models import TARGET_ARCHS, make_classifier, resolve_arch

EPOCHS = 5  # enough for >= 97% on digits with the default (residual) evaluator


def digits_protocol(private: list[int] | None = None) -> Protocol:
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).div(16).unsqueeze(1)
    data = ImageData("digits", x, torch.tensor(d.target), tuple(str(c) for c in range(10)))
    return make_protocol(data, private_classes=private, seed=0)



@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return digits_protocol()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def ev(protocol: Protocol, cache_dir) -> Evaluator:  # noqa: ANN001
    return train_evaluator(protocol, seed=0, epochs=EPOCHS, cache=Cache(cache_dir))


def test_evaluator_is_accurate_and_not_the_target_arch(ev: Evaluator, protocol: Protocol) -> None:
    assert ev.accuracy >= 0.95
    target_arch = resolve_arch("auto", protocol.image_shape)
    assert ev.arch == "resnet" and ev.arch not in TARGET_ARCHS and ev.arch != target_arch
    target = make_classifier("auto", image_shape=protocol.image_shape, num_classes=5)
    assert [type(m) for m in ev.model.modules()] != [type(m) for m in target.modules()]
    # Evaluator.accuracy is the accuracy on private_test, as target_accuracy measures it
    assert target_accuracy(ev.model, protocol.private_test) == pytest.approx(ev.accuracy)
    feats = ev.features(protocol.private_test.x[:7])
    assert feats.shape == (7, ev.model.feat_dim) and not feats.requires_grad


@pytest.mark.parametrize("arch", ["cnn-s", "auto", "cnn-l", "bogus"])
def test_target_family_or_unknown_arch_refused(protocol: Protocol, arch: str) -> None:
    with pytest.raises(ConfigError, match=f"evaluator arch '{arch}'"):
        train_evaluator(protocol, arch=arch, epochs=1)


def test_eval_seed_never_equals_target_seed() -> None:
    seeds = [derive_seed(s, "eval") for s in range(200)]
    assert all(d != s for s, d in enumerate(seeds)) and len(set(seeds)) == 200
    assert derive_seed(3, "eval") == derive_seed(3, "eval") != derive_seed(3, "other")


def test_references_real_success_vs_no_information(ev: Evaluator, protocol: Protocol) -> None:
    refs = reference_reconstructions(protocol, [0, 1, 2, 3, 4], 20, seed=0)
    real = evaluate(refs["private_test"], protocol, ev)
    noise = evaluate(refs["noise"], protocol, ev)
    assert real["acc1"] >= 0.90
    assert noise["acc1"] <= 1 / 5 + 0.2  # chance is 1/5
    assert real["knn_dist"] < noise["knn_dist"] / 5
    assert real["knn_pixel_dist"] < noise["knn_pixel_dist"]
    assert 0 <= real["acc1_std"] <= 0.5 and real["acc5"] == 1.0  # 5 classes: top-5 is all
    assert evaluate(refs["private_test"], protocol, ev) == real  # deterministic


def test_reference_sampling(protocol: Protocol) -> None:
    refs = reference_reconstructions(protocol, torch.tensor([3, 1]), 4, seed=1)
    real, noise = refs["private_test"], refs["noise"]
    assert real.labels.tolist() == noise.labels.tolist() == [3] * 4 + [1] * 4
    assert real.images.shape == noise.images.shape == (8, 1, 8, 8)
    assert 0 <= float(noise.images.min()) and float(noise.images.max()) <= 1
    test = protocol.private_test
    for img, lab in zip(real.images, real.labels, strict=True):  # real held-out images
        same = (test.x == img).flatten(1).all(1)
        assert bool(same.any()) and int(test.y[same][0]) == int(lab)
    assert len({tuple(i.flatten().tolist()) for i in real.images[:4]}) == 4  # no repeats
    again = reference_reconstructions(protocol, [3, 1], 4, seed=1)
    assert torch.equal(again["private_test"].images, real.images)
    assert torch.equal(again["noise"].images, noise.images)
    other = reference_reconstructions(protocol, [3, 1], 4, seed=2)
    assert not torch.equal(other["noise"].images, noise.images)
    # more images than the class holds: every test image of the class is used before repeats
    n0 = int((test.y == 0).sum())
    many = reference_reconstructions(protocol, [0], n0 + 3, seed=0)["private_test"].images
    assert len({tuple(i.flatten().tolist()) for i in many[:n0]}) == len(
        {tuple(i.flatten().tolist()) for i in test.x[test.y == 0]})


@pytest.mark.parametrize(
    ("labels", "per_label", "match"),
    [([5], 1, r"labels \[5\] out of range"), ([], 1, "at least one"), ([0], 0, "per_label")],
)
def test_reference_bad_requests(protocol: Protocol, labels: list[int], per_label: int,
                                match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        reference_reconstructions(protocol, labels, per_label, seed=0)


def test_target_accuracy_refuses_a_model_for_another_protocol(protocol: Protocol) -> None:
    narrow = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=3)
    with pytest.raises(DataError):
        target_accuracy(narrow, protocol.private_test)


def test_cache_hit_returns_identical_predictions(
    ev: Evaluator, protocol: Protocol, cache_dir, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(invbench.training, "train_classifier", no_training)
    again = train_evaluator(protocol, seed=0, epochs=EPOCHS, cache=Cache(cache_dir))
    x = protocol.private_test.x
    assert torch.equal(again.logits(x), ev.logits(x))
    assert again.accuracy == ev.accuracy and again.cache_key == ev.cache_key
    # the private features are stored once and read back by the second evaluator
    f1, l1 = ev.private_features(protocol)
    assert len(list((cache_dir / "evaluator-features").glob("*.safetensors"))) == 1
    f2, l2 = again.private_features(protocol)
    assert torch.equal(f1, f2) and torch.equal(l1, l2)
    assert f1.shape == (len(protocol.private_train), ev.model.feat_dim)
    # a different seed is a different evaluator (a miss, so it would train)
    with pytest.raises(AssertionError, match="must not train"):
        train_evaluator(protocol, seed=1, epochs=EPOCHS, cache=Cache(cache_dir))


def test_training_is_deterministic_under_a_seed() -> None:
    small = digits_protocol(private=[0, 1])
    a = train_evaluator(small, seed=4, epochs=1)
    b = train_evaluator(small, seed=4, epochs=1)
    c = train_evaluator(small, seed=5, epochs=1)
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
