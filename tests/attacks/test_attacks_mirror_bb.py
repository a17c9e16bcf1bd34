"""MIRROR's black-box genetic search (An et al. 2022) on digits, with the shared WGAN-GP prior."""

from __future__ import annotations

import pytest
from conftest import judged_success

from invbench.access import BlackBox, LabelOnly
from invbench.attacks.mirror_bb import MirrorBB
from invbench.errors import AccessError, ConfigError

SHAPE = (1, 8, 8)
K = 5
SEARCH = {"gan_steps": 300, "pool": 500, "population": 50, "generations": 20}


def _access(model, **kw) -> BlackBox:
    return BlackBox.local(model, num_classes=K, image_shape=SHAPE, **kw)


@pytest.fixture(scope="module")
def prepared(digits_protocol, digits_target, wgan_prior_cache):
    atk = MirrorBB(**SEARCH)
    atk.prepare(digits_protocol.public, access=_access(digits_target), seed=0,
                cache=wgan_prior_cache)
    return atk


def test_beats_chance_under_success_within_its_query_budget(prepared, digits_target,
                                                            digits_judges, noise_success):
    budget = 500 + 5 * 49 * 20  # pool once + (population - 1) x generations per label
    access = _access(digits_target, budget=budget)
    rec = prepared.invert(access, [0, 1, 2, 3, 4], per_label=10, seed=0)
    assert rec.queries == budget and prepared.prepare_queries_ == 0  # the prior is public
    success = judged_success(rec, digits_judges)
    assert success >= noise_success + 0.2, (success, noise_success)
    assert (rec.scores > 0.5).float().mean() > 0.8  # the target agrees with the search


def test_generations_raise_the_fitness(prepared, digits_target):
    def best(generations: int) -> float:
        atk = MirrorBB(**{**SEARCH, "generations": generations, "pool": 100,
                          "population": 20})
        atk.prior_modules_, atk.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
        rec = atk.invert(_access(digits_target), [3], per_label=1, seed=1)
        return float(rec.scores[0])

    assert best(15) > best(0)


def test_bad_settings_and_access(prepared, digits_target, digits_protocol):
    with pytest.raises(ConfigError, match="must be >= population"):
        MirrorBB(pool=10, population=20)
    with pytest.raises(ConfigError, match="population holds 50"):
        prepared.invert(_access(digits_target), [0], per_label=51, seed=0)
    label_only = LabelOnly.local(digits_target, num_classes=K, image_shape=SHAPE)
    with pytest.raises(AccessError, match="needs black-box access"):
        MirrorBB(gan_steps=2).prepare(digits_protocol.public, access=label_only)
    assert label_only.queries == 0
