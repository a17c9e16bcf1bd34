"""Threat models are enforced: each access level exposes exactly what it grants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invbench.access import BlackBox, LabelOnly, WhiteBox, make_access
from invbench.attacks.base import Attack, Reconstruction
from invbench.defenses.output import Round, TopK
from invbench.errors import AccessError, QueryBudgetExceeded

SHAPE = (1, 8, 8)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))


def _x(n: int = 4) -> torch.Tensor:
    return torch.rand(n, *SHAPE)


def test_white_box_gives_gradients_and_counts_queries():
    acc = WhiteBox(_model(), num_classes=5, image_shape=SHAPE)
    x = _x().requires_grad_(True)
    acc.logits(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert acc.queries == 4


def test_black_box_holds_no_module_and_returns_no_gradients():
    model = _model()
    acc = BlackBox.local(model, num_classes=5, image_shape=SHAPE)
    assert not any(isinstance(v, nn.Module) for v in vars(acc).values())
    assert not hasattr(acc, "model") and not hasattr(acc, "logits")
    x = _x().requires_grad_(True)
    p = acc.predict_proba(x)
    assert not p.requires_grad
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5)
    assert torch.allclose(p, torch.softmax(model(x), 1).detach(), atol=1e-6)
    with pytest.raises(RuntimeError):
        p.sum().backward()


def test_label_only_returns_labels_only():
    model = _model()
    acc = LabelOnly.local(model, num_classes=5, image_shape=SHAPE)
    assert not any(isinstance(v, nn.Module) for v in vars(acc).values())
    assert not hasattr(acc, "predict_proba")
    x = _x(6)
    out = acc.predict_label(x)
    assert out.dtype == torch.int64 and out.shape == (6,)
    assert torch.equal(out, model(x).argmax(1))


def test_budget_is_enforced_before_the_query_runs():
    acc = BlackBox.local(_model(), num_classes=5, image_shape=SHAPE, budget=10)
    acc.predict_proba(_x(8))
    with pytest.raises(QueryBudgetExceeded, match="budget of 10"):
        acc.predict_proba(_x(3))
    assert acc.queries == 8


def test_wrong_input_shape_is_refused():
    acc = LabelOnly.local(_model(), num_classes=5, image_shape=SHAPE)
    with pytest.raises(AccessError, match="expected images of shape"):
        acc.predict_label(torch.rand(2, 1, 9, 9))


def test_output_transforms():
    p = torch.tensor([[0.1234, 0.5, 0.3766]])
    assert torch.allclose(Round(decimals=1)(p), torch.tensor([[0.1, 0.5, 0.4]]))
    assert torch.equal(TopK(k=1)(p), torch.tensor([[0.0, 0.5, 0.0]]))
    acc = BlackBox.local(_model(), num_classes=5, image_shape=SHAPE, output_transform=TopK(k=1))
    assert (acc.predict_proba(_x()) > 0).sum(1).eq(1).all()


def test_make_access_gives_exactly_the_declared_level():
    for level, cls in (("white-box", WhiteBox), ("black-box", BlackBox), ("label-only", LabelOnly)):
        acc = make_access(level, _model(), num_classes=5, image_shape=SHAPE)
        assert type(acc) is cls and acc.level == level
    with pytest.raises(AccessError, match="unknown access level"):
        make_access("grey-box", _model(), num_classes=5, image_shape=SHAPE)


class _Probe(Attack):
    """Records what it was handed (a black-box test attack)."""

    access = "black-box"
    seen: list = []

    def _invert(self, access, labels, *, generator, quiet):
        _Probe.seen.append(access)
        x = torch.rand(len(labels), *access.image_shape, generator=generator, device=access.device)
        p = access.predict_proba(x)
        return Reconstruction(x, labels, p.gather(1, labels.view(-1, 1)).squeeze(1))


def test_attack_refuses_weaker_access_and_black_box_attack_never_sees_the_module():
    _Probe.name = "probe"
    atk = _Probe()
    with pytest.raises(AccessError, match="needs black-box access"):
        atk.invert(LabelOnly.local(_model(), num_classes=5, image_shape=SHAPE), [0, 1])
    acc = make_access(atk.access, _model(), num_classes=5, image_shape=SHAPE)
    rec = atk.invert(acc, [0, 1, 2], per_label=2, seed=1)
    handed = _Probe.seen[-1]
    assert isinstance(handed, BlackBox)
    assert not any(isinstance(v, nn.Module) for v in vars(handed).values())
    assert rec.images.shape == (6, *SHAPE) and rec.queries == 6
    assert rec.labels.tolist() == [0, 0, 1, 1, 2, 2]


def test_logits_and_features_come_from_one_counted_pass() -> None:
    from invbench.defenses.mid import VIBClassifier
    from invbench.models import make_classifier, reseed

    torch.manual_seed(0)
    plain = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5).eval()
    vib = VIBClassifier(make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5),
                        num_classes=5, k=8, samples=2).eval()
    x = torch.rand(6, 1, 8, 8, requires_grad=True)
    for model in (plain, vib):
        calls: list[int] = []
        handle = model.feature_module.register_forward_hook(
            lambda *_, seen=calls: seen.append(1)
        )
        access = WhiteBox(model, num_classes=5, image_shape=(1, 8, 8))
        reseed(model, 3)
        logits, feats = access.logits_and_features(x)
        assert len(calls) == 1 and access.queries == 6  # one pass, counted once
        reseed(model, 3)
        torch.testing.assert_close(logits, model(x))
        torch.testing.assert_close(feats, model.features(x))
        (grad,) = torch.autograd.grad(feats.sum() + logits.sum(), x)
        assert grad.abs().sum() > 0
        handle.remove()


def test_logits_and_features_without_a_feature_module_runs_features() -> None:
    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def features(self, x):
            return x.flatten(1) * 2

        def forward(self, x):
            return self.lin(x.flatten(1))

    access = WhiteBox(Bare(), num_classes=3, image_shape=(1, 2, 2))
    x = torch.rand(5, 1, 2, 2)
    logits, feats = access.logits_and_features(x)
    assert logits.shape == (5, 3) and access.queries == 5
    torch.testing.assert_close(feats, x.flatten(1) * 2)
