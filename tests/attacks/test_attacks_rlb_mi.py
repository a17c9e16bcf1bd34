"""RLB-MI (Han et al. 2023) on digits: a soft actor-critic agent in a WGAN-GP latent space."""

from __future__ import annotations

import pytest
import torch
from conftest import judged_success

from invbench.access import BlackBox
from invbench.attacks.rlb_mi import RLBMI, rlb_reward
from invbench.errors import ConfigError

SHAPE = (1, 8, 8)
K = 5
EPISODES = 800
#: two agents (one per label) keep this file's cost down; each trains for EPISODES
LABELS = [3, 4]


def _access(model, **kw) -> BlackBox:
    return BlackBox.local(model, num_classes=K, image_shape=SHAPE, **kw)


def test_reward_by_hand():
    state = torch.tensor([[0.6, 0.3, 0.1]])
    action = torch.tensor([[0.5, 0.25, 0.25]])
    got = rlb_reward(state, action, torch.tensor([0]))
    expected = 2 * torch.log(torch.tensor(0.6)) + 2 * torch.log(torch.tensor(0.5)) \
        + 8 * torch.log(torch.tensor(0.3))
    assert torch.allclose(got, expected.view(1, 1))
    worse = rlb_reward(state, action, torch.tensor([2]))  # below another class: margin 1e-7
    assert float(worse) < float(got) and float(worse) < 8 * torch.log(torch.tensor(1e-6))


@pytest.fixture(scope="module")
def attacked(digits_protocol, digits_target, wgan_prior_cache):
    atk = RLBMI(gan_steps=300, episodes=EPISODES)
    atk.prepare(digits_protocol.public, access=_access(digits_target), seed=0,
                cache=wgan_prior_cache)
    access = _access(digits_target, budget=len(LABELS) * EPISODES * 3)
    rec = atk.invert(access, LABELS, per_label=10, seed=0)
    return atk, rec


def test_beats_chance_within_its_query_budget(attacked, digits_judges, noise_success):
    atk, rec = attacked
    assert rec.queries == len(LABELS) * EPISODES * 3  # per episode: state, action, test image
    success = judged_success(rec, digits_judges)
    assert success >= noise_success + 0.2, (success, noise_success)  # measured 0.52


def test_the_agent_learns(attacked):
    # the policy's test images in the last 50 episodes against the first 50, per label:
    # every label improves, and on average by more than 0.2
    atk, _ = attacked
    firsts, lasts = [], []
    for scores in atk.test_scores_.values():
        firsts.append(sum(scores[:50]) / 50)
        lasts.append(sum(scores[-50:]) / 50)
        assert lasts[-1] > firsts[-1], (firsts[-1], lasts[-1])
    assert sum(lasts) / len(lasts) > sum(firsts) / len(firsts) + 0.2


def test_needs_an_episode_per_image(attacked, digits_target):
    atk, _ = attacked
    few = RLBMI(gan_steps=300, episodes=2)
    few.prior_modules_, few.prior_parts_ = atk.prior_modules_, atk.prior_parts_
    with pytest.raises(ConfigError, match="raise episodes"):
        few.invert(_access(digits_target), [0], per_label=3, seed=0)
