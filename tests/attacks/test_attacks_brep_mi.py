"""BREP-MI (Kahla et al. 2022) on digits: label-only boundary repulsion in a WGAN-GP prior."""

from __future__ import annotations

import pytest
import torch
from conftest import judged_success
from torch import nn

from invbench.access import LabelOnly
from invbench.attacks.brep_mi import BREPMI, query_labels
from invbench.errors import ConfigError

SHAPE = (1, 8, 8)
K = 5


def _access(model, **kw) -> LabelOnly:
    return LabelOnly.local(model, num_classes=K, image_shape=SHAPE, **kw)


@pytest.fixture(scope="module")
def prepared(digits_protocol, digits_target, wgan_prior_cache):
    atk = BREPMI(gan_steps=300, iterations=100, patience=30)
    atk.prepare(digits_protocol.public, access=_access(digits_target), seed=0,
                cache=wgan_prior_cache)
    return atk


def test_repulsion_beats_chance_and_its_own_starting_points(prepared, digits_target,
                                                             digits_judges, noise_success):
    bound = 30 * 100 * 33 + 40 * 256  # images x steps x (points + 1), plus the first draws
    access = _access(digits_target, budget=bound)
    rec = prepared.invert(access, [0, 1, 2, 3, 4], per_label=6, seed=0)
    success = judged_success(rec, digits_judges)
    assert success >= noise_success + 0.1, (success, noise_success)
    assert (rec.scores > prepared.params.radius).float().mean() > 0.5  # spheres grew
    start = BREPMI(gan_steps=300, iterations=1)
    start.prior_modules_, start.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
    first = start.invert(_access(digits_target), [0, 1, 2, 3, 4], per_label=6, seed=0)
    assert success > judged_success(first, digits_judges)


def test_initial_points_are_in_their_class_and_distinct(prepared, digits_target):
    G = prepared.generator_
    access = _access(digits_target)
    labels = torch.tensor([1, 1, 2, 2, 2])
    z = prepared.initial_points(access, G, labels, torch.Generator().manual_seed(0))
    assert torch.equal(query_labels(access, G, z), labels)
    assert torch.unique(z, dim=0).shape[0] == 5


class _NeverFour(nn.Module):
    """A target that never answers label 4."""

    def forward(self, x):  # noqa: ANN001, ANN201
        logits = torch.zeros(x.shape[0], K)
        logits[:, 0] = 1.0
        return logits


def test_a_class_the_prior_never_reaches_is_a_clear_error(prepared):
    atk = BREPMI(gan_steps=300, init_tries=2, init_batch=8)
    atk.prior_modules_, atk.prior_parts_ = prepared.prior_modules_, prepared.prior_parts_
    access = _access(_NeverFour())
    with pytest.raises(ConfigError, match=r"no latent of the prior is labelled \[4\]"):
        atk.invert(access, [4], per_label=1, seed=0)
    assert access.queries == 16
