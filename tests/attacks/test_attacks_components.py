"""Attack components: latent samplers, identity losses, priors, restart selection, optimiser."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invbench.attacks.components import (
    IDENTITY_LOSSES,
    ConfidenceIdentity,
    CrossEntropyIdentity,
    GaussianLatent,
    LogitIdentity,
    MaxMarginIdentity,
    NesterovSGD,
    expand_restarts,
    l2_prior,
    make_identity_loss,
    select_best,
    target_confidence,
    total_variation,
)
from invbench.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- latents


def test_gaussian_latent_shape_seed_and_clip() -> None:
    sampler = GaussianLatent(16, clip=0.5)
    a = sampler.sample(64, generator=torch.Generator().manual_seed(3))
    b = sampler.sample(64, generator=torch.Generator().manual_seed(3))
    c = sampler.sample(64, generator=torch.Generator().manual_seed(4))
    assert a.shape == (64, 16) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.abs().max()) <= 0.5
    assert float((a.abs() == 0.5).float().mean()) > 0.3  # N(0,1) mass beyond 0.5 got clipped


def test_gaussian_latent_unclipped_is_standard_normal() -> None:
    z = GaussianLatent(8).sample(4000, generator=torch.Generator().manual_seed(0))
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1.0) < 0.05
    assert float(z.abs().max()) > 2.5


def test_gaussian_latent_project_is_in_place_even_for_leaf_requiring_grad() -> None:
    z = torch.full((2, 3), 5.0, requires_grad=True)
    out = GaussianLatent(3, clip=1.0).project_(z)
    assert out is z and torch.equal(z.detach(), torch.ones(2, 3))


@pytest.mark.parametrize("kwargs", [{"dim": 0}, {"dim": 4, "clip": 0.0}, {"dim": 4, "clip": -1.0}])
def test_gaussian_latent_rejects_bad_config(kwargs: dict) -> None:
    dim = kwargs.pop("dim")
    with pytest.raises(ConfigError):
        GaussianLatent(dim, **kwargs)


# ----------------------------------------------------------------------------- losses


def test_identity_losses_known_values() -> None:
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)
    assert torch.allclose(CrossEntropyIdentity()(logits, labels),
                          F.cross_entropy(logits, labels, reduction="none"))
    assert torch.allclose(ConfidenceIdentity()(logits, labels),
                          torch.stack([1 - p[0, 0], 1 - p[1, 2]]))
    assert torch.equal(LogitIdentity()(logits, labels), torch.tensor([-2.0, -0.0]))
    assert torch.equal(MaxMarginIdentity()(logits, labels), torch.tensor([-1.0, 0.0]))
    assert torch.allclose(target_confidence(logits, labels), torch.stack([p[0, 0], p[1, 2]]))


@pytest.mark.parametrize("name", sorted(IDENTITY_LOSSES))
def test_identity_losses_fall_as_the_label_logit_rises(name: str) -> None:
    loss = make_identity_loss(name)
    base = torch.tensor([[0.5, 1.0, -0.3, 0.2]])
    labels = torch.tensor([2])
    values = []
    for bump in (0.0, 1.0, 3.0):
        logits = base.clone()
        logits[0, 2] += bump
        values.append(float(loss(logits, labels)[0]))
    assert values[0] > values[1] > values[2]


@pytest.mark.parametrize("name", sorted(IDENTITY_LOSSES))
def test_identity_losses_are_per_sample_and_differentiable(name: str) -> None:
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    out = make_identity_loss(name)(logits, labels)
    assert out.shape == (6,)
    (g,) = torch.autograd.grad(out.sum(), logits)
    # each row's gradient depends on that row only, and the label logit is pushed up
    assert bool((g.gather(1, labels.view(-1, 1)) < 0).all())


def test_make_identity_loss_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown identity loss 'hinge'; choose one of: ce,"):
        make_identity_loss("hinge")


# ----------------------------------------------------------------------------- priors


def test_total_variation_values() -> None:
    flat = torch.full((1, 1, 4, 4), 0.7)
    checker = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)) % 2
    checker = checker.float().view(1, 1, 4, 4)
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., 1::2] = 1.0  # vertical stripes: only horizontal neighbours differ
    tv = total_variation(torch.cat([flat, checker, stripes]))
    assert tv.shape == (3,)
    assert torch.allclose(tv, torch.tensor([0.0, 2.0, 1.0]))


def test_l2_prior_values() -> None:
    x = torch.stack([torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5)])
    assert torch.allclose(l2_prior(x), torch.tensor([0.0, 0.25]))


# ----------------------------------------------------------------------------- restarts


def test_expand_restarts_layout() -> None:
    lab, groups = expand_restarts(torch.tensor([7, 8, 9]), 2)
    assert lab.tolist() == [7, 8, 9, 7, 8, 9]
    assert groups.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ConfigError):
        expand_restarts(torch.tensor([1]), 0)


def test_select_best_picks_the_highest_per_group() -> None:
    scores = torch.tensor([0.1, 0.9, 0.8, 0.2, float("nan"), 0.95])
    groups = torch.tensor([0, 1, 0, 1, 2, 2])
    assert select_best(scores, groups).tolist() == [[2], [1], [5]]
    assert select_best(scores, groups, k=2).tolist() == [[2, 0], [1, 3], [5, 4]]


def test_select_best_ties_keep_the_earlier_index() -> None:
    assert select_best(torch.ones(4), torch.tensor([1, 0, 1, 0])).tolist() == [[1], [0]]


def test_select_best_matches_a_loop_on_random_input() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(60, generator=gen)
    groups = torch.arange(12).repeat(5)[torch.randperm(60, generator=gen)]
    got = select_best(scores, groups, k=3)
    for g in range(12):
        idx = torch.nonzero(groups == g).flatten()
        want = idx[torch.argsort(scores[idx], descending=True)][:3]
        assert got[g].tolist() == want.tolist()


def test_select_best_rejects_small_groups_and_bad_shapes() -> None:
    with pytest.raises(DataError, match="needs >= 2 entries"):
        select_best(torch.rand(3), torch.tensor([0, 0, 1]), k=2)
    with pytest.raises(DataError):
        select_best(torch.rand(3), torch.tensor([0, 1]))
    with pytest.raises(ConfigError):
        select_best(torch.rand(3), torch.tensor([0, 1, 2]), k=0)


# ----------------------------------------------------------------------------- optimiser


def test_nesterov_sgd_matches_torch_sgd() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(5, 3, generator=gen)
    a = torch.zeros(5, 3, requires_grad=True)
    b = torch.zeros(5, 3, requires_grad=True)
    ours = NesterovSGD(lr=0.05, momentum=0.9)
    ref = torch.optim.SGD([b], lr=0.05, momentum=0.9, nesterov=True)
    for _ in range(20):
        (ga,) = torch.autograd.grad(((a - target) ** 2).sum(), a)
        ours.step_(a, ga)
        ref.zero_grad()
        ((b - target) ** 2).sum().backward()
        ref.step()
    assert torch.allclose(a.detach(), b.detach(), atol=1e-6)
    assert not torch.allclose(a.detach(), torch.zeros(5, 3))


def test_nesterov_sgd_without_momentum_is_gradient_descent() -> None:
    x = torch.ones(3)
    NesterovSGD(lr=0.5, momentum=0.0).step_(x, torch.tensor([1.0, 2.0, 0.0]))
    assert x.tolist() == [0.5, 0.0, 1.0]


@pytest.mark.parametrize("kwargs", [{"lr": 0.0}, {"lr": 0.1, "momentum": 1.0},
                                    {"lr": 0.1, "momentum": -0.1}])
def test_nesterov_sgd_rejects_bad_config(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        NesterovSGD(**kwargs)
