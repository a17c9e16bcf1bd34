"""Attack components: latents, identity losses, priors, selection, optimisers, augmentations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invbench.attacks.components import (
    IDENTITY_LOSSES,
    OPTIMIZERS,
    Compose,
    ConfidenceIdentity,
    CrossEntropyIdentity,
    GaussianLatent,
    Jitter,
    LatentGaussian,
    LogitIdentity,
    MaxMarginIdentity,
    NesterovSGD,
    RandomFlip,
    RandomResizedCrop,
    RandomShift,
    chunked,
    confidence_under_augmentation,
    crop_resize,
    expand_restarts,
    final_selection,
    hflip,
    initial_selection,
    l2_prior,
    make_augment,
    make_identity_loss,
    make_optimizer,
    roll,
    select_best,
    shift,
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


@pytest.mark.parametrize(
    ("name", "ref"),
    [
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
        ("nesterov", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.5, 0.99))),
    ],
)
def test_make_optimizer_matches_torch(name: str, ref) -> None:
    target = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    a = torch.zeros(4, 3, requires_grad=True)
    b = torch.zeros(4, 3, requires_grad=True)
    ours = make_optimizer(name, [a], lr=0.05, momentum=0.9, betas=(0.5, 0.99))
    theirs = ref([b])
    for _ in range(15):
        for x, opt in ((a, ours), (b, theirs)):
            opt.zero_grad()
            ((x - target) ** 2).sum().backward()
            opt.step()
    assert torch.equal(a.detach(), b.detach())
    assert float(((a.detach() - target) ** 2).sum()) < float((target**2).sum())


def test_make_optimizer_nesterov_equals_our_nesterov_sgd() -> None:
    a = torch.zeros(3, requires_grad=True)
    b = torch.zeros(3)
    opt, ours = make_optimizer("nesterov", [a], lr=0.1), NesterovSGD(lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        (a - 1.0).pow(2).sum().backward()
        opt.step()
        ours.step_(b, 2 * (b - 1.0))
    assert torch.allclose(a.detach(), b, atol=1e-6)


def test_make_optimizer_errors_list_the_names() -> None:
    assert OPTIMIZERS == ("sgd", "nesterov", "adam")
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'; choose one of: sgd, "
                                          "nesterov, adam"):
        make_optimizer("rmsprop", [torch.zeros(1, requires_grad=True)], lr=0.1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lr must be > 0"):
        make_optimizer("adam", [torch.zeros(1, requires_grad=True)], lr=0.0)


# ----------------------------------------------------------------------------- LatentGaussian


def test_latent_gaussian_is_reparameterised() -> None:
    dist = LatentGaussian(3, 4, generator=torch.Generator().manual_seed(0), init_std=2.0)
    assert torch.equal(dist.mean(), torch.zeros(3, 4))
    assert torch.allclose(dist.log_sigma.exp(), torch.full((3, 4), 2.0))
    z = dist.sample(5, generator=torch.Generator().manual_seed(1))
    assert z.shape == (3, 5, 4)
    eps = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(z, 2.0 * eps)  # mu = 0, sigma = 2
    z.sum().backward()
    # d/dmu sum(mu + sigma * eps) = n per coordinate; d/dlog_sigma = sigma * sum_n eps
    assert torch.allclose(dist.mu.grad, torch.full((3, 4), 5.0))
    assert torch.allclose(dist.log_sigma.grad, 2.0 * eps.sum(1), atol=1e-5)


def test_latent_gaussian_learns_a_target_mean_and_seeded_init() -> None:
    gen = torch.Generator().manual_seed(0)
    a = LatentGaussian(2, 3, generator=torch.Generator().manual_seed(7), mu_std=1.0)
    b = LatentGaussian(2, 3, generator=torch.Generator().manual_seed(7), mu_std=1.0)
    assert torch.equal(a.mu, b.mu) and float(a.mu.detach().abs().sum()) > 0
    opt = make_optimizer("adam", a.parameters(), lr=0.05)
    goal = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -0.5]])
    for _ in range(400):
        opt.zero_grad()
        ((a.sample(16, generator=gen) - goal.unsqueeze(1)) ** 2).mean().backward()
        opt.step()
    assert torch.allclose(a.mean(), goal, atol=0.1)
    assert float(a.log_sigma.detach().exp().max()) < 0.3  # spread shrinks towards a point mass
    with pytest.raises(ConfigError):
        LatentGaussian(2, 3, generator=gen, init_std=0.0)


# ----------------------------------------------------------------------------- augmentations


def _ramp(b: int = 2, c: int = 1, h: int = 4, w: int = 5) -> torch.Tensor:
    return torch.arange(b * c * h * w, dtype=torch.float32).view(b, c, h, w) / (b * c * h * w)


def test_flip_twice_is_identity_and_flip_is_horizontal() -> None:
    x = _ramp()
    assert torch.equal(hflip(hflip(x)), x)
    assert torch.equal(hflip(x)[..., 0], x[..., -1])
    flip = RandomFlip(p=1.0)
    assert torch.equal(flip(flip(x, generator=torch.Generator()), generator=torch.Generator()), x)
    mixed = hflip(x, torch.tensor([True, False]))
    assert torch.equal(mixed[0], x[0].flip(-1)) and torch.equal(mixed[1], x[1])


def test_shift_by_a_known_offset() -> None:
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]
    assert shift(x, 1, 0).flatten().tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6]
    assert shift(x, 0, -1).flatten().tolist() == [2, 3, 0, 5, 6, 0, 8, 9, 0]
    assert shift(x, -1, 1, padding="replicate").flatten().tolist() == [
        4, 4, 5, 7, 7, 8, 7, 7, 8]
    two = torch.cat([x, x])
    per = shift(two, torch.tensor([1, 0]), torch.tensor([0, 1]))
    assert torch.equal(per[0], shift(x, 1, 0)[0]) and torch.equal(per[1], shift(x, 0, 1)[0])
    assert torch.equal(shift(x, 0, 0), x)


def test_roll_matches_torch_roll_per_image() -> None:
    x = _ramp(3)
    assert torch.equal(roll(x, 1, -2), torch.roll(x, shifts=(1, -2), dims=(2, 3)))
    dy, dx = torch.tensor([0, 1, -3]), torch.tensor([2, 0, 1])
    out = roll(x, dy, dx)
    for i in range(3):
        want = torch.roll(x[i], shifts=(int(dy[i]), int(dx[i])), dims=(1, 2))
        assert torch.equal(out[i], want)


def test_crop_with_scale_one_is_identity_and_a_window_is_resized() -> None:
    x = _ramp(2, 3, 6, 6)
    full = RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(full(x, generator=torch.Generator().manual_seed(0)), x, atol=1e-6)
    # bilinear resizing is exact on a linear ramp: the middle half [2 px, 6 px] of a row
    # 0..7 (pixel w's centre at w + 0.5) is sampled at 2 + (j + 0.5) / 2, value 1.75 + j / 2
    ramp = torch.arange(8.0).view(1, 1, 1, 8).repeat(1, 1, 3, 1)
    out = crop_resize(ramp, top=torch.zeros(1), left=torch.tensor([0.25]),
                      height=torch.ones(1), width=torch.tensor([0.5]))
    want = (1.75 + 0.5 * torch.arange(8.0)).view(1, 1, 1, 8).expand(1, 1, 3, 8)
    assert torch.allclose(out, want, atol=1e-5)


@pytest.mark.parametrize("spec", ["crop", "flip", "shift", "jitter:2", "crop:0.5,flip,shift:2"])
def test_random_augments_keep_shape_range_and_are_seeded(spec: str) -> None:
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    aug = make_augment(spec)
    a = aug(x, generator=torch.Generator().manual_seed(1))
    b = aug(x, generator=torch.Generator().manual_seed(1))
    c = aug(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_augments_are_differentiable() -> None:
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    for aug in (RandomResizedCrop(scale=(0.5, 0.9)), RandomFlip(), RandomShift(2), Jitter(2)):
        (g,) = torch.autograd.grad(aug(x, generator=torch.Generator()).sum(), x)
        assert float(g.abs().sum()) > 0


def test_crop_differs_per_image() -> None:
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)).repeat(6, 1, 1, 1)
    out = RandomResizedCrop(scale=(0.5, 0.7))(x, generator=torch.Generator().manual_seed(0))
    assert len({tuple(o.flatten().tolist()) for o in out}) == 6


def test_jitter_moves_the_whole_batch_together_unless_per_image() -> None:
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)).repeat(8, 1, 1, 1)
    same = Jitter(2)(x, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(same[0], s) for s in same)
    per = Jitter(2, per_image=True)(x, generator=torch.Generator().manual_seed(3))
    assert not all(torch.equal(per[0], s) for s in per)


def test_make_augment_none_and_errors() -> None:
    x = torch.rand(2, 1, 4, 4)
    assert torch.equal(make_augment("none")(x, generator=torch.Generator()), x)
    assert isinstance(make_augment("crop,flip"), Compose)
    with pytest.raises(ConfigError, match="unknown augmentation 'blur'.*crop, flip, shift"):
        make_augment("crop,blur")
    with pytest.raises(ConfigError, match="whole pixels"):
        make_augment("shift:1.5")
    with pytest.raises(ConfigError):
        RandomResizedCrop(scale=(0.9, 0.5))


# ----------------------------------------------------------------------------- selection, batching


def test_confidence_under_augmentation() -> None:
    w = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))

    def logits_fn(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ w

    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1])
    flip = RandomFlip(p=1.0)
    plain = confidence_under_augmentation(logits_fn, x, y, augment=flip, views=0,
                                          generator=torch.Generator())
    assert torch.allclose(plain, target_confidence(logits_fn(x), y))
    both = confidence_under_augmentation(logits_fn, x, y, augment=flip, views=1,
                                         generator=torch.Generator(), batch_size=3)
    want = (target_confidence(logits_fn(x), y) + target_confidence(logits_fn(x.flip(-1)), y)) / 2
    assert torch.allclose(both, want, atol=1e-6)


def test_initial_and_final_selection_index_candidates() -> None:
    cands = torch.arange(6.0).view(6, 1)
    scores = torch.tensor([0.1, 0.9, 0.8, 0.2, 0.5, 0.3])
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    idx = initial_selection(cands, scores, groups)
    assert idx.tolist() == [[1], [2], [4]]
    assert cands[idx.flatten()].flatten().tolist() == [1.0, 2.0, 4.0]
    assert final_selection(cands, scores, groups, k=2).tolist() == [[1, 0], [2, 3], [4, 5]]
    with pytest.raises(DataError, match="one row per score"):
        final_selection(cands[:5], scores, groups)


def test_chunked() -> None:
    assert chunked(5) == [slice(0, 5)]
    assert chunked(5, None) == [slice(0, 5)]
    assert chunked(5, 2) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert chunked(4, 10) == [slice(0, 4)]
    covered = torch.cat([torch.arange(23)[s] for s in chunked(23, 4)])
    assert torch.equal(covered, torch.arange(23))
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        chunked(5, 0)
