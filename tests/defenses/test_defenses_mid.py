"""MID squeezes information out of the prediction, and costs accuracy as beta grows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invbench.defenses import MID, NoDefense, TrainConfig, VIBClassifier
from invbench.defenses.mid import gaussian_kl
from invbench.errors import ConfigError
from invbench.models import is_stochastic, reseed
from invbench.training import evaluate_accuracy

CFG = TrainConfig(epochs=6)


@pytest.fixture(scope="module")
def mid_models(digits_protocol):
    return {
        beta: MID(beta=beta, samples=0).train(digits_protocol, config=CFG, seed=0)
        for beta in (0.0, 0.5)
    }


def _kl(model: VIBClassifier, x: torch.Tensor) -> float:
    with torch.no_grad():
        mu, std = model.encode(x)
        return float(gaussian_kl(mu, std))


def test_build_swaps_the_head_for_a_bottleneck(digits_protocol):
    model = MID(beta=0.01).build(arch="auto", image_shape=(1, 8, 8), num_classes=5)
    assert isinstance(model, VIBClassifier)
    assert model.encoder.out_features == 2 * model.k and model.k == model.feat_dim // 2
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 5)


def test_larger_beta_lowers_the_information_term_and_accuracy(digits_protocol, mid_models):
    x, y = digits_protocol.private_test.x, digits_protocol.private_test.y
    kl_low, kl_high = _kl(mid_models[0.0], x), _kl(mid_models[0.5], x)
    # The KL to N(0, I) upper-bounds I(X; Z): beta must shrink it by a large factor.
    assert kl_high < 0.2 * kl_low, (kl_low, kl_high)
    acc_low = evaluate_accuracy(mid_models[0.0], x, y)
    assert acc_low > 0.9
    # The bottleneck still carries the label at this beta, at some cost.
    acc_high = evaluate_accuracy(mid_models[0.5], x, y)
    assert 0.2 < acc_high <= acc_low + 0.02


def test_prediction_sampling_modes(digits_protocol, mid_models):
    model = mid_models[0.5]
    x = digits_protocol.private_test.x[:16]
    with torch.no_grad():
        model.samples = 0
        a, b = model(x), model(x)
        assert torch.equal(a, b)  # deterministic: the mean code
        model.samples = 8
        c = model(x)
        assert torch.allclose(torch.logsumexp(c, 1), torch.zeros(16), atol=1e-5)  # log-probs
        assert not torch.equal(a, c)
        model.samples = 0


def _built(samples: int) -> VIBClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return MID(samples=samples).build(arch="auto", image_shape=(1, 8, 8), num_classes=5).eval()


def test_eval_sampling_is_seeded_by_reseed(digits_protocol, mid_models):
    model = mid_models[0.5]
    x = digits_protocol.private_test.x[:16]
    model.samples = 4
    try:
        with torch.inference_mode():
            reseed(model, 0)
            a, a_next = model(x), model(x)
            reseed(model, 0)
            b = model(x)
            reseed(model, 1)
            c = model(x)
            model.samples = 0
            mean = model(x)
    finally:
        model.samples = 0
    assert torch.equal(a, b)  # same seed, same draws
    assert not torch.equal(a, c)  # another seed, other draws
    assert not torch.equal(a, a_next)  # the stream moves on between forwards
    assert not torch.equal(a, mean)  # the draws are real samples, not the mean code


def test_eval_sampling_never_touches_the_global_rng():
    x = torch.rand(6, 1, 8, 8)
    model = _built(samples=3)
    state = torch.get_rng_state()
    with torch.inference_mode():
        first = model(x)  # no reseed call: the default seed 0
        model(x)
    assert torch.equal(torch.get_rng_state(), state)
    other = _built(samples=3)
    torch.manual_seed(123)  # the global RNG does not matter
    with torch.inference_mode():
        assert torch.equal(other(x), first)
        reseed(other, 0)
        assert torch.equal(other(x), first)


def test_is_stochastic_and_reseed_walk_submodules(digits_target):
    sampled, mean = _built(samples=2), _built(samples=0)
    assert sampled.stochastic and not mean.stochastic
    assert is_stochastic(sampled) and is_stochastic(nn.Sequential(nn.Identity(), sampled))
    assert not is_stochastic(mean) and not is_stochastic(digits_target)
    wrapped = nn.Sequential(sampled)
    x = torch.rand(4, 1, 8, 8)
    with torch.inference_mode():
        reseed(wrapped, 5)
        a = wrapped(x)
        reseed(wrapped, 5)
        assert torch.equal(wrapped(x), a)
    reseed(digits_target, 5)  # a model without random predictions: nothing to do


def test_mid_and_none_share_the_training_loop(digits_protocol):
    plain = NoDefense().train(digits_protocol, config=TrainConfig(epochs=1), seed=3)
    again = NoDefense().train(digits_protocol, config=TrainConfig(epochs=1), seed=3)
    for p, q in zip(plain.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)


def test_bad_beta():
    with pytest.raises(ConfigError, match="The 'beta' parameter of defense 'mid' must be >= 0.0"):
        MID(beta=-1)
