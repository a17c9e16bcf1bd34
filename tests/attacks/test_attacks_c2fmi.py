"""C2FMI (Ye et al. 2023) on digits: inverse-network guidance, then differential evolution."""

from __future__ import annotations

import pytest
import torch
from conftest import judged_success

from invbench.access import BlackBox
from invbench.attacks.c2fmi import C2FMI, truncated_fitness
from invbench.errors import ConfigError

SHAPE = (1, 8, 8)
K = 5
SETUP = {"gan_steps": 300, "embed_arch": "cnn-s", "generations": 40}


def _access(model, **kw) -> BlackBox:
    return BlackBox.local(model, num_classes=K, image_shape=SHAPE, **kw)


def test_truncated_fitness_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    got = truncated_fitness(probs, torch.tensor([1, 2]), m=2)
    assert torch.allclose(got, torch.tensor([0.3, -0.8]))  # label 2 is outside the top 2


@pytest.fixture(scope="module")
def prepared(digits_protocol, digits_target, wgan_prior_cache):
    atk = C2FMI(**SETUP)
    access = _access(digits_target)
    atk.prepare(digits_protocol.public, access=access, seed=0, cache=wgan_prior_cache)
    return atk


def _with_prior(prepared: C2FMI, **params) -> C2FMI:
    atk = C2FMI(**{**SETUP, **params})
    atk.prior_modules_, atk.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
    atk.embed_, atk.inverse_ = prepared.embed_, prepared.inverse_
    return atk


def test_beats_chance_within_its_query_budget(prepared, digits_protocol, digits_target,
                                              digits_judges, noise_success):
    assert prepared.prepare_queries_ == len(digits_protocol.public)
    budget = 5 * 32 * (40 + 1) + 50  # per label popsize x (generations + 1), one per image
    access = _access(digits_target, budget=budget)
    rec = prepared.invert(access, [0, 1, 2, 3, 4], per_label=10, seed=0)
    assert rec.queries == budget
    success = judged_success(rec, digits_judges)
    assert success >= noise_success + 0.1, (success, noise_success)


def test_each_stage_moves_the_target_towards_the_label(prepared, digits_target):
    def mean_score(**params) -> float:
        rec = _with_prior(prepared, **params).invert(_access(digits_target), [0, 1, 2, 3, 4],
                                                     per_label=4, seed=0)
        return float(rec.scores.mean())

    random_start = mean_score(coarse_steps=0, generations=0)
    coarse = mean_score(generations=0)
    fine = mean_score(generations=20)  # greedy evolution: fitness never falls
    assert random_start < coarse < fine, (random_start, coarse, fine)


def test_bad_embedding_family():
    with pytest.raises(ConfigError, match="embed_arch"):
        C2FMI(embed_arch="vgg")
