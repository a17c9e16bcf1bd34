"""The evaluation models on digits: accuracy, seeds and names, test-time augmentation, the
cache (keys with names and adversarial settings) and real-vs-noise separation."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

import invbench.training
from invbench.adversarial import AdversarialTraining, default_adversarial
from invbench.cache import Cache
from invbench.data.protocol import ImageData, Protocol, make_protocol
from invbench.errors import ConfigError, DataError
from invbench.metrics import (
    EvalContext,
    Evaluator,
    derive_seed,
    evaluate,
    noise_reference,
    private_test_reference,
    split_holdout,
    target_accuracy,
    train_evaluator,
)
from invbench.metrics.evaluator import TTA_SHIFTS, shift_views
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
    _, ref = split_holdout(protocol, seed=0)
    real_rec = private_test_reference(protocol, [0, 1, 2, 3, 4], per_class=20, ref_index=ref,
                                      seed=0)
    noise_rec = noise_reference(protocol, [0, 1, 2, 3, 4], per_class=20, seed=0)
    ctx = EvalContext(protocol=protocol, standard=ev)
    real = evaluate(real_rec, ctx, metrics=["accuracy", "knn"])
    noise = evaluate(noise_rec, ctx, metrics=["accuracy", "knn"])
    assert real["acc1"] >= 0.90
    assert noise["acc1"] <= 1 / 5 + 0.2  # chance is 1/5
    assert real["knn_dist"] < noise["knn_dist"] / 5
    assert real["knn_pixel_dist"] < noise["knn_pixel_dist"]
    assert 0 <= real["acc1_std"] <= 0.5 and real["acc5"] == 1.0  # 5 classes: top-5 is all
    assert evaluate(real_rec, ctx, metrics=["accuracy", "knn"]) == real  # deterministic


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


# --------------------------------------------------------------------------- test-time augmentation


class _Pixel(nn.Module):
    """Logits read off fixed pixels: not shift-invariant (class k looks at pixel (k, k))."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.k = k

    def features(self, x: Tensor) -> Tensor:
        return torch.stack([x[:, 0, i, i] for i in range(self.k)], 1) * 4.0

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def _evaluator(model: nn.Module, shape: tuple[int, int, int] = (1, 5, 5), k: int = 3) -> Evaluator:
    return Evaluator(model, arch="test", num_classes=k, image_shape=shape, accuracy=1.0,
                     batch_size=3)


def test_shift_views_by_hand() -> None:
    x = torch.arange(9.0).view(1, 1, 3, 3)
    views = shift_views(x)
    assert views.shape == (5, 1, 3, 3) and TTA_SHIFTS[0] == (0, 0)
    assert torch.equal(views[0], x[0])
    # (dy, dx) = (0, 1): each pixel takes its right neighbour; the last column repeats
    assert views[1, 0].tolist() == [[1, 2, 2], [4, 5, 5], [7, 8, 8]]
    assert views[2, 0].tolist() == [[0, 0, 1], [3, 3, 4], [6, 6, 7]]  # (0, -1)
    assert views[3, 0].tolist() == [[3, 4, 5], [6, 7, 8], [6, 7, 8]]  # (1, 0)
    assert views[4, 0].tolist() == [[0, 1, 2], [0, 1, 2], [3, 4, 5]]  # (-1, 0)


def test_tta_is_the_log_mean_softmax_over_the_five_views() -> None:
    ev = _evaluator(_Pixel())
    x = torch.rand(7, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    out = ev.logits(x, tta=True)  # batch_size 3: three batches
    assert out.shape == (7, 3)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(7))
    views = shift_views(x).view(5, 7, 1, 5, 5)
    want = torch.stack([torch.softmax(_Pixel()(v), 1) for v in views]).mean(0).log()
    torch.testing.assert_close(out, want)
    plain = ev.logits(x)
    torch.testing.assert_close(plain, _Pixel()(x))
    assert not torch.allclose(out, torch.log_softmax(plain, 1), atol=1e-3)  # shifts matter
    assert torch.equal(ev.logits(x, tta=True), out)  # deterministic
    # a constant image looks the same in every view: TTA changes nothing but normalising
    flat = torch.full((2, 1, 5, 5), 0.3)
    torch.testing.assert_close(ev.logits(flat, tta=True), torch.log_softmax(ev.logits(flat), 1))
    assert ev.logits(torch.rand(0, 1, 5, 5), tta=True).shape == (0, 3)


def test_predict_is_the_argmax_with_and_without_tta(ev: Evaluator, protocol: Protocol) -> None:
    x = protocol.private_test.x
    pred = ev.predict(x)
    assert pred.shape == (len(x),) and pred.dtype == torch.long
    assert torch.equal(pred, ev.logits(x).argmax(1))
    tta = ev.predict(x, tta=True)
    assert torch.equal(tta, ev.logits(x, tta=True).argmax(1))
    assert (tta == protocol.private_test.y).float().mean() >= 0.9
    with pytest.raises(DataError, match="expected images of shape"):
        ev.predict(torch.rand(2, 1, 9, 9), tta=True)


# --------------------------------------------------------------------------- names, seeds, keys


@pytest.fixture()
def no_training(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Replace training by a recorder of the untrained weights and the call's arguments."""
    calls: list[dict[str, object]] = []

    def record(model: nn.Module, x: Tensor, y: Tensor, **kwargs: object) -> nn.Module:
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        calls.append({"state": state, **kwargs})
        return model.eval()

    monkeypatch.setattr(invbench.training, "train_classifier", record)
    return calls


def _same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_default_evaluator_keeps_the_eval_seed(protocol: Protocol, no_training) -> None:  # noqa: ANN001
    ev = train_evaluator(protocol, seed=3, epochs=1)
    assert ev.name == ev.arch == "resnet" and ev.adversarial is None
    (call,) = no_training
    assert call["seed"] == derive_seed(3, "eval") and call["adversarial"] is None
    torch.manual_seed(derive_seed(3, "eval"))
    fresh = make_classifier("resnet", image_shape=protocol.image_shape, num_classes=5)
    assert _same(call["state"], fresh.state_dict())
    train_evaluator(protocol, seed=3, epochs=1, arch="resnet", name="resnet")  # the same one
    assert _same(no_training[1]["state"], call["state"])
    assert call["desc"] == "train evaluator resnet"


def test_every_named_evaluator_gets_its_own_initialisation(protocol: Protocol,
                                                           no_training) -> None:  # noqa: ANN001
    adv = default_adversarial(protocol.image_shape)
    runs = [
        ("resnet", None, None),
        ("resnet", "second", None),
        ("resnet", "third", None),
        ("resnet", "robust", adv),
        ("dense", "robust", adv),
        ("dense", None, None),
    ]
    evs = [train_evaluator(protocol, seed=0, epochs=1, arch=a, name=n, adversarial=v)
           for a, n, v in runs]
    seeds = [c["seed"] for c in no_training]
    assert seeds[1:] == [derive_seed(0, f"eval:{n}") for n in
                         ("second", "third", "robust", "robust", "dense")]
    states = [c["state"] for c in no_training]
    assert not _same(states[0], states[1]) and not _same(states[1], states[2])
    assert not _same(states[0], states[3])  # same arch, adversarial: another start
    assert [e.name for e in evs] == ["resnet", "second", "third", "robust", "robust", "dense"]
    assert evs[4].adversarial == adv and evs[4].arch == "dense"
    assert no_training[4]["adversarial"] == adv
    assert no_training[4]["desc"] == "train evaluator robust (dense, PGD eps=0.1)"
    assert no_training[5]["desc"] == "train evaluator dense"
    assert "robust" in repr(evs[4]) and "PGD eps=0.1" in repr(evs[4])


def test_cache_key_holds_name_and_adversarial_settings(protocol: Protocol, tmp_path,  # noqa: ANN001
                                                       no_training) -> None:  # noqa: ANN001
    cache = Cache(tmp_path)
    adv = default_adversarial(protocol.image_shape)

    def key(**kw: object) -> str:
        ev = train_evaluator(protocol, seed=0, epochs=1, arch="dense", cache=cache, **kw)
        assert ev.cache_key is not None
        return ev.cache_key

    plain = key()
    keys = [
        plain,
        key(name="other"),
        key(name="robust", adversarial=adv),
        key(name="robust", adversarial=adv.model_copy(update={"eps": 0.05})),
        key(name="robust", adversarial=default_adversarial(protocol.image_shape,
                                                           method="fgsm-rs")),
    ]
    assert len(set(keys)) == len(keys)
    n_trained = len(no_training)
    assert key() == plain and len(no_training) == n_trained  # a hit trains nothing
    assert key(name="robust", adversarial=adv) == keys[2] and len(no_training) == n_trained


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"arch": "cnn-s", "name": "robust"}, "evaluator arch 'cnn-s' is a target architecture"),
        ({"arch": "auto", "adversarial": AdversarialTraining(
            method="pgd", eps=0.1, steps=1, step_size=0.1)}, "evaluator arch 'auto'"),
        ({"name": "has space"}, "evaluator name"),
        ({"name": ""}, "evaluator name"),
        ({"name": 3}, "evaluator name"),
        ({"adversarial": {"method": "pgd"}}, "AdversarialTraining"),
    ],
)
def test_bad_evaluator_requests_are_one_line_errors(protocol: Protocol, kw: dict,
                                                    needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        train_evaluator(protocol, epochs=1, **kw)
    assert needle in str(info.value) and "\n" not in str(info.value)

