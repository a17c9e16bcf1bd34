"""DeepInversion (Yin et al. 2020) on the digits cnn-s target (BatchNorm after every conv)."""

from __future__ import annotations

import pytest
import torch
from conftest import judged_success
from torch import nn

import invbench.attacks.deepinversion  # noqa: F401 - registers the attack
from invbench.access import BlackBox, LabelOnly, WhiteBox
from invbench.attacks.deepinversion import BNStatistics, DeepInversion, _round_robin, tv_losses
from invbench.errors import AccessError, ConfigError
from invbench.models import make_classifier
from invbench.registry import ATTACKS

SHAPE = (1, 8, 8)
K = 5
PER_LABEL = 10
#: fewer steps than the default 500 to keep this file under a minute of CPU
ITERATIONS = 300


def _white(model: nn.Module) -> WhiteBox:
    return WhiteBox(model, num_classes=K, image_shape=SHAPE)


@pytest.fixture(scope="module")
def runs(digits_target: nn.Module) -> dict[str, tuple]:
    """The attack (defaults, 300 steps) and its ablation without the BN prior, 5 x 10 digits."""
    out = {}
    for key, params in {"default": {}, "no_bn": {"r_feature": 0.0}}.items():
        attack = DeepInversion(iterations=ITERATIONS, **params)
        rec = attack.invert(_white(digits_target), list(range(K)), per_label=PER_LABEL, seed=0)
        out[key] = (rec, attack.history_)
    return out


def test_registered() -> None:
    assert ATTACKS.get("deepinversion") is DeepInversion
    assert DeepInversion.access == "white-box" and not DeepInversion.needs_public


def test_beats_chance_under_success_and_the_bn_prior_is_what_helps(
    runs, digits_judges, noise_success: float
) -> None:
    rec, _ = runs["default"]
    assert rec.images.shape == (K * PER_LABEL, *SHAPE)
    assert rec.labels.tolist() == [c for c in range(K) for _ in range(PER_LABEL)]
    assert float(rec.scores.min()) > 0.5  # the target recognises every requested label
    success = judged_success(rec, digits_judges)
    ablated = judged_success(runs["no_bn"][0], digits_judges)
    # measured: success 0.38, 0.08 without the BN term, noise 0.0 (flip off: 0.60 vs 0.34)
    assert success > noise_success + 0.2, f"success {success:.2f} vs noise {noise_success:.2f}"
    assert success > ablated + 0.15, f"success {success:.2f} vs no BN prior {ablated:.2f}"


def test_bn_loss_falls_during_optimisation(runs) -> None:
    _, history = runs["default"]
    first, last = history[0], history[-1]
    assert first["step"] == 1 and last["step"] == ITERATIONS
    # measured: 25.9 at step 1, 2.0 at the end; 11.9 at the end without the BN term
    assert last["bn"] < 0.25 * first["bn"]
    # without the term nothing pulls the statistics in: they stay far off
    no_bn_last = runs["no_bn"][1][-1]
    assert last["bn"] < 0.5 * no_bn_last["bn"]


def test_hooks_are_removed(digits_target: nn.Module) -> None:
    DeepInversion(iterations=3).invert(_white(digits_target), [0, 1], seed=0)
    bns = [m for m in digits_target.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(not m._forward_hooks for m in bns)


def test_hooks_are_removed_when_the_loop_fails(digits_target: nn.Module) -> None:
    class Failing(WhiteBox):
        def logits(self, x: torch.Tensor) -> torch.Tensor:
            super().logits(x)  # the BN hooks fire, then the step fails
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        DeepInversion(iterations=3).invert(
            Failing(digits_target, num_classes=K, image_shape=SHAPE), [0], seed=0
        )
    assert all(not m._forward_hooks for m in digits_target.modules())


def test_deterministic_under_seed(digits_target: nn.Module) -> None:
    attack = DeepInversion(iterations=20, batch_size=4)
    a = attack.invert(_white(digits_target), [0, 3], per_label=3, seed=5)
    b = attack.invert(_white(digits_target), [0, 3], per_label=3, seed=5)
    c = attack.invert(_white(digits_target), [0, 3], per_label=3, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.images, c.images)
    assert a.queries == 20 * 6 + 6  # every step's forward plus the final scoring are counted


def test_refuses_a_target_without_batchnorm() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mlp = make_classifier("mlp", image_shape=SHAPE, num_classes=K)
    with pytest.raises(ConfigError, match="deepinversion needs a target with BatchNorm layers"):
        DeepInversion(iterations=2).invert(_white(mlp), [0], seed=0)


@pytest.mark.parametrize("level", [BlackBox, LabelOnly])
def test_refuses_weaker_access(digits_target: nn.Module, level) -> None:
    access = level.local(digits_target, num_classes=K, image_shape=SHAPE)
    with pytest.raises(AccessError):
        DeepInversion(iterations=2).invert(access, [0], seed=0)


def test_bn_statistics_match_a_hand_computed_value() -> None:
    bn1, bn2 = nn.BatchNorm2d(2), nn.BatchNorm2d(2)
    bn1.running_mean.copy_(torch.tensor([1.0, 0.0]))
    bn1.running_var.copy_(torch.tensor([1.0, 4.0]))
    model = nn.Sequential(bn1, nn.Identity(), bn2).eval()
    # channel 0 is all 3 (mean 3, var 0); channel 1 alternates 0/2 (mean 1, var 1)
    x = torch.zeros(2, 2, 2, 2)
    x[:, 0] = 3.0
    x[:, 1, :, 0] = 2.0
    with BNStatistics(model, first_bn_multiplier=10.0) as stats:
        out = model(x)
        layer1 = (torch.tensor([2.0, 1.0]).norm() + torch.tensor([1.0, 3.0]).norm())
        # bn2 sees bn1's output: normalised by the running stats, then the default affine
        y = out.detach()  # == bn2(bn1(x)) with bn2's running stats 0/1 (identity in eval)
        h = (x - bn1.running_mean.view(1, 2, 1, 1)) / (bn1.running_var.view(1, 2, 1, 1)
                                                       + bn1.eps).sqrt()
        assert torch.allclose(y, h / (1 + bn2.eps) ** 0.5, atol=1e-5)
        layer2 = (h.mean((0, 2, 3)).norm()
                  + (h.var((0, 2, 3), unbiased=False) - 1.0).norm())
        per = stats.per_layer()
        assert torch.allclose(per[0], layer1, atol=1e-5)
        assert torch.allclose(per[1], layer2, atol=1e-5)
        assert torch.allclose(stats.loss(), 10.0 * layer1 + layer2, atol=1e-4)
    assert not bn1._forward_hooks and not bn2._forward_hooks


def test_tv_losses_hand_computed() -> None:
    x = torch.zeros(2, 1, 3, 3)
    x[0, :, :, 1] = 1.0  # a vertical line: right and both diagonal neighbours differ
    tv1, tv2 = tv_losses(x)
    # right: 6 diffs of 1 (mean 1); down: 0; each diagonal: 4 entries, all of them 1
    assert torch.allclose(tv1, torch.tensor([3.0, 0.0]))
    assert torch.allclose(tv2, torch.tensor([6**0.5 + 2.0 + 2.0, 0.0]))


def test_round_robin_interleaves_labels() -> None:
    lab = torch.tensor([0, 0, 0, 1, 1, 1, 4, 4, 4])
    order = _round_robin(lab)
    assert lab[order].tolist() == [0, 1, 4, 0, 1, 4, 0, 1, 4]
    assert sorted(order.tolist()) == list(range(9))


def test_batch_size_changes_what_is_matched(digits_target: nn.Module) -> None:
    # BN statistics are per batch: one batch of 6 and three of 2 are different problems
    one = DeepInversion(iterations=10, batch_size=None).invert(
        _white(digits_target), [0, 1, 2], per_label=2, seed=0)
    three = DeepInversion(iterations=10, batch_size=2).invert(
        _white(digits_target), [0, 1, 2], per_label=2, seed=0)
    assert not torch.allclose(one.images, three.images)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"iterations": 0}, "iterations"), ({"lr": 0.0}, "lr"), ({"batch_size": 0}, "batch_size"),
     ({"jitter": -1}, "jitter")],
)
def test_bad_params_raise_config_error(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DeepInversion(**params)
