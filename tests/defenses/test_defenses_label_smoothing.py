"""Label smoothing and NegLS (Struppek et al., ICLR 2024): targets, schedule, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invbench.defenses import LabelSmoothing, TrainConfig
from invbench.defenses.base import TrainingData
from invbench.defenses.label_smoothing import (
    negative_smoothing_schedule,
    smoothed_cross_entropy,
)
from invbench.errors import ConfigError
from invbench.registry import DEFENSES
from invbench.training import evaluate_accuracy


def test_registered_with_the_papers_defense_default() -> None:
    assert DEFENSES.get("label-smoothing") is LabelSmoothing
    assert LabelSmoothing().params.alpha == -0.05


@pytest.mark.parametrize("alpha", [-0.3, -0.05, 0.0, 0.1, 0.5])
def test_loss_is_the_cross_entropy_against_the_smoothed_target(alpha: float) -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 2])
    target = (1 - alpha) * F.one_hot(y, 4).float() + alpha / 4  # what the formula says
    want = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
    torch.testing.assert_close(smoothed_cross_entropy(logits, y, alpha), want)
    if alpha >= 0:  # torch's own label smoothing agrees for non-negative factors
        torch.testing.assert_close(smoothed_cross_entropy(logits, y, alpha),
                                   F.cross_entropy(logits, y, label_smoothing=alpha))
    # NegLS targets: more than 1 on the true class, negative mass elsewhere
    if alpha < 0:
        assert float(target[0, 0]) == pytest.approx(1 - alpha + alpha / 4)
        assert float(target[0, 1]) == pytest.approx(alpha / 4) and alpha / 4 < 0


def test_negative_schedule_is_the_references() -> None:
    # the reference, 100 epochs: 0 before 50, alpha * (e + 1 - 50) / 50 until 74, then alpha
    got = [negative_smoothing_schedule(e, 100, -0.1) for e in range(100)]
    for e in range(50):
        assert got[e] == 0.0
    for e in range(50, 75):
        assert got[e] == pytest.approx(-0.1 * (e + 1 - 50) / 50)
    for e in range(75, 100):
        assert got[e] == -0.1
    # a 10-epoch run: 0 for epochs 0-4, ramp for 5-7, alpha for 8-9
    assert [negative_smoothing_schedule(e, 10, -0.1) for e in (4, 5, 7, 8)] == pytest.approx(
        [0.0, -0.02, -0.06, -0.1]
    )


def test_training_applies_the_schedule_each_epoch(digits_protocol) -> None:
    seen: list[float] = []
    defense = LabelSmoothing(alpha=-0.2)
    real = defense.loss

    def spy(model, x, y):
        seen.append(defense.current_alpha)
        return real(model, x, y)

    defense.loss = spy  # type: ignore[method-assign]
    model = defense.train(digits_protocol, config=TrainConfig(epochs=8), seed=0)
    per_epoch = sorted(set(seen), reverse=True)
    assert per_epoch == pytest.approx([negative_smoothing_schedule(e, 8, -0.2)
                                       for e in (0, 4, 5)] + [-0.2])
    assert seen[0] == 0.0 and seen[-1] == -0.2
    acc = evaluate_accuracy(model, digits_protocol.private_test.x, digits_protocol.private_test.y)
    assert acc > 0.85, acc


def test_positive_alpha_is_constant_and_negative_alpha_sharpens_confidence(
    digits_protocol,
) -> None:
    data = TrainingData.from_protocol(digits_protocol)
    pos = LabelSmoothing(alpha=0.1)
    pos_hooks = pos.train_hooks(None, data, TrainConfig(epochs=10), 0)
    for e in range(10):
        pos_hooks["on_epoch"](e)
        assert pos.current_alpha == 0.1  # no schedule for ordinary smoothing
    # the loss's minimiser: ordinary smoothing caps the true-class probability at the
    # smoothed target, NegLS drives it to 1
    for alpha, cap in ((0.1, 1 - 0.1 + 0.1 / 5), (-0.1, None)):
        z = torch.zeros(1, 5, requires_grad=True)
        opt = torch.optim.SGD([z], lr=1.0)
        for _ in range(500):
            opt.zero_grad()
            smoothed_cross_entropy(z, torch.tensor([0]), alpha).backward()
            opt.step()
        p0 = float(torch.softmax(z.detach(), 1)[0, 0])
        if cap is not None:
            assert p0 == pytest.approx(cap, abs=1e-3)
        else:
            assert p0 > 0.99


def test_bad_alpha() -> None:
    with pytest.raises(ConfigError, match="'alpha' parameter of defense 'label-smoothing'"):
        LabelSmoothing(alpha=1.0)
    with pytest.raises(ConfigError, match="'alpha' parameter"):
        LabelSmoothing(alpha=-1.0)
