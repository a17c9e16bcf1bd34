"""Trap-MID (Liu & Lin, NeurIPS 2024): triggered inputs go to their trapdoor class."""

from __future__ import annotations

import pytest
import torch

from invbench.defenses import TrainConfig, TrapMID
from invbench.defenses.trap_mid import blend
from invbench.errors import ConfigError
from invbench.registry import DEFENSES
from invbench.training import evaluate_accuracy


def test_registered_with_the_papers_defaults() -> None:
    assert DEFENSES.get("trap-mid") is TrapMID
    p = TrapMID().params
    assert (p.alpha, p.beta, p.optimized, p.trigger_step, p.discriminator) == (
        0.02, 0.2, True, 0.01, True)


def test_blend_is_the_convex_combination() -> None:
    x, t = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    torch.testing.assert_close(blend(x, t, 0.02), torch.full((2, 1, 2, 2), 0.02))


@pytest.fixture(scope="module")
def trapped(digits_protocol):
    # on 8x8 digits the paper's 2% blend is too faint to learn in a few epochs (trapdoor
    # accuracy ~0.01 after 20 epochs); a 30% blend of fixed triggers is learned in 8-10
    defense = TrapMID(alpha=0.3, optimized=False)
    model = defense.train(digits_protocol, config=TrainConfig(epochs=8), seed=0)
    return defense, model


def test_triggered_inputs_are_classified_as_their_trapdoor_class(digits_protocol,
                                                                  trapped) -> None:
    defense, model = trapped
    t = defense.triggers_
    assert t is not None and t.shape == (5, 1, 8, 8)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    x, y = digits_protocol.private_test.x, digits_protocol.private_test.y
    assert evaluate_accuracy(model, x, y) > 0.85  # clean accuracy is kept
    hits = []
    for k in range(5):
        other = x[y != k]  # images of other classes, carrying class k's trigger
        triggered = blend(other, t[k].expand_as(other), defense.params.alpha)
        with torch.inference_mode():
            hits.append(float((model(triggered).argmax(1) == k).float().mean()))
    # measured: 0.90-1.0 per class after 8 epochs (0.99-1.0 after 10); chance is 0.2
    assert min(hits) > 0.8, hits


def test_optimised_triggers_move_and_stay_in_range(digits_protocol, trapped) -> None:
    fixed, _ = trapped
    again = TrapMID(alpha=0.3, optimized=False)
    again.train(digits_protocol, config=TrainConfig(epochs=1), seed=0)
    assert torch.equal(fixed.triggers_, again.triggers_)  # seeded, and fixed means fixed
    optimised = TrapMID(alpha=0.3)  # discriminator + signed-gradient trigger steps
    model = optimised.train(digits_protocol, config=TrainConfig(epochs=2), seed=0)
    moved = (optimised.triggers_ - fixed.triggers_).abs()
    assert float(moved.max()) > 0.05  # ~2 epochs x 14 steps of 0.01
    assert float(optimised.triggers_.min()) >= 0.0 and float(optimised.triggers_.max()) <= 1.0
    x, y = digits_protocol.private_test.x, digits_protocol.private_test.y
    assert evaluate_accuracy(model, x, y) > 0.5


def test_bad_params() -> None:
    with pytest.raises(ConfigError, match="'alpha' parameter of defense 'trap-mid'"):
        TrapMID(alpha=0.0)
    with pytest.raises(ConfigError, match="'beta' parameter"):
        TrapMID(beta=1.0)
