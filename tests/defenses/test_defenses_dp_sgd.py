"""DP-SGD (Abadi et al. 2016) through opacus: the ε it reports is the ε it promised."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("opacus")

from invbench.cache import Cache  # noqa: E402
from invbench.defenses import DPSGD, TrainConfig  # noqa: E402
from invbench.defenses.dp_sgd import poisson_batches  # noqa: E402
from invbench.errors import ConfigError  # noqa: E402
from invbench.registry import DEFENSES  # noqa: E402
from invbench.training import evaluate_accuracy  # noqa: E402

CFG = TrainConfig(epochs=2, lr=1e-2)


def test_registered() -> None:
    assert DEFENSES.get("dp-sgd") is DPSGD
    p = DPSGD().params
    assert (p.epsilon, p.noise_multiplier, p.delta, p.max_grad_norm) == (8.0, None, 1e-5, 1.0)


def test_target_has_groupnorm_not_batchnorm() -> None:
    model = DPSGD().build(arch="cnn-s", image_shape=(1, 8, 8), num_classes=5)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in model.modules())


@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_reported_epsilon_is_at_most_the_target(digits_protocol, epsilon: float) -> None:
    defense = DPSGD(epsilon=epsilon)
    model = defense.train(digits_protocol, config=CFG, seed=0)
    rep = defense.report_
    assert rep["delta"] == 1e-5
    assert 0.8 * epsilon < rep["epsilon"] <= epsilon  # calibrated, not loose
    # training left no opacus hooks behind on the target
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    acc = evaluate_accuracy(model, digits_protocol.private_test.x, digits_protocol.private_test.y)
    assert acc > 0.4, acc  # learns something even at epsilon 1 (measured: 0.81 at 4 epochs)


def test_fixed_noise_reports_its_epsilon_and_less_noise_costs_more(digits_protocol) -> None:
    quiet, loud = DPSGD(epsilon=None, noise_multiplier=0.7), DPSGD(epsilon=None,
                                                                  noise_multiplier=2.0)
    quiet.train(digits_protocol, config=CFG, seed=0)
    loud.train(digits_protocol, config=CFG, seed=0)
    assert quiet.report_["noise_multiplier"] == 0.7
    assert quiet.report_["epsilon"] > loud.report_["epsilon"] > 0


def test_report_is_cached_with_the_target(digits_protocol, tmp_path) -> None:
    cache = Cache(tmp_path)
    first = DPSGD(epsilon=4.0)
    first.train(digits_protocol, config=CFG, seed=0, cache=cache)
    again = DPSGD(epsilon=4.0)
    again.train(digits_protocol, config=CFG, seed=0, cache=cache)
    assert again.train_hit_ and again.report_ == first.report_


def test_poisson_batches() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = poisson_batches(1000, 0.05, 400, gen)
    sizes = torch.tensor([len(b) for b in batches], dtype=torch.float)
    assert abs(float(sizes.mean()) - 50) < 1.5 and float(sizes.std()) > 3  # Binomial(1000, .05)
    assert all(len(set(b.tolist())) == len(b) for b in batches)


def test_exactly_one_of_epsilon_and_noise() -> None:
    with pytest.raises(ConfigError, match="are exclusive"):
        DPSGD(epsilon=1.0, noise_multiplier=1.0)
    with pytest.raises(ConfigError, match="are exclusive"):
        DPSGD(epsilon=None)
