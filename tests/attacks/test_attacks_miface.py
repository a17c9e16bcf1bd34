"""MI-Face (Fredrikson et al. 2015) on a digits target trained on classes 0-4."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from invbench.access import BlackBox, LabelOnly, WhiteBox
from invbench.attacks import MIFace
from invbench.attacks.mi_face import CHECK_EVERY
from invbench.data import Protocol
from invbench.errors import AccessError, ConfigError
from invbench.models import make_classifier
from invbench.registry import ATTACKS
from invbench.training import train_classifier

SHAPE = (1, 8, 8)
K = 5


@pytest.fixture(scope="module")
def setup(
    digits_protocol: Protocol, digits_target: nn.Module
) -> tuple[Protocol, nn.Module, nn.Module]:
    """(protocol, white-box target cnn-s, independent evaluator resnet trained on the same data)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        evaluator = make_classifier("resnet", image_shape=SHAPE, num_classes=K)
    train_classifier(evaluator, digits_protocol.private_train.x, digits_protocol.private_train.y,
                     epochs=5, seed=1)
    return digits_protocol, digits_target.eval(), evaluator.eval()


def _white(model: nn.Module) -> WhiteBox:
    return WhiteBox(model, num_classes=K, image_shape=SHAPE)


class _Counting(nn.Module):
    """Wraps a model and counts forward calls (to check one batched pass per step)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


class _Recording(nn.Module):
    """Wraps a model and keeps a copy of every input batch (each iterate MI-Face scores)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.inner(x)


def test_registered() -> None:
    assert ATTACKS.get("mi-face") is MIFace
    assert MIFace.access == "white-box" and not MIFace.needs_public


def test_reconstructions_fool_an_independent_model(setup) -> None:
    proto, target, evaluator = setup
    rec = MIFace().invert(_white(target), list(range(K)), per_label=4, seed=0)
    assert rec.images.shape == (20, *SHAPE)
    with torch.inference_mode():
        pred_eval = evaluator(rec.images).argmax(1)
        pred_target = target(rec.images).argmax(1)
    assert float((pred_target == rec.labels).float().mean()) == 1.0
    acc = float((pred_eval == rec.labels).float().mean())
    assert acc >= 0.6, f"independent-model accuracy {acc:.2f} is not well above chance (0.2)"
    assert float(rec.scores.min()) > 0.9


def test_fredrikson_cost_raises_target_confidence(setup) -> None:
    _, target, _ = setup
    x0 = torch.zeros(K, *SHAPE)
    with torch.inference_mode():
        before = torch.softmax(target(x0), 1)[torch.arange(K), torch.arange(K)]
    rec = MIFace(steps=100, loss="prob", lr=1.0).invert(_white(target), list(range(K)), seed=0)
    # the cost saturates where p(y|x) starts near 0, so not every label gets far
    assert bool((rec.scores > before).all())
    assert float(rec.scores.mean()) > float(before.mean()) + 0.3


def test_shapes_ranges_and_label_order(setup) -> None:
    _, target, _ = setup
    rec = MIFace(steps=10).invert(_white(target), [3, 1], per_label=3, seed=0)
    assert rec.images.shape == (6, *SHAPE) and rec.images.dtype == torch.float32
    assert rec.labels.tolist() == [3, 3, 3, 1, 1, 1]
    assert rec.scores.shape == (6,)
    assert float(rec.images.min()) >= 0.0 and float(rec.images.max()) <= 1.0
    assert float(rec.scores.min()) >= 0.0 and float(rec.scores.max()) <= 1.0
    assert rec.queries == 10 * 6 + 6


def test_one_batched_forward_per_step(setup) -> None:
    _, target, _ = setup
    counting = _Counting(target)
    rec = MIFace(steps=12, init="uniform", restarts=3).invert(
        _white(counting), [0, 1, 2], per_label=2, seed=0
    )
    assert counting.calls == 12 + 1  # 12 steps + 1 final scoring pass, 18 images each
    assert rec.queries == 13 * 18


def test_deterministic_under_seed(setup) -> None:
    _, target, _ = setup
    attack = MIFace(steps=20, init="uniform", restarts=2, tv_weight=0.1, l2_weight=0.1)
    a = attack.invert(_white(target), [0, 4], per_label=2, seed=7)
    b = attack.invert(_white(target), [0, 4], per_label=2, seed=7)
    c = attack.invert(_white(target), [0, 4], per_label=2, seed=8)
    assert torch.equal(a.images, b.images) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.images, c.images)


def test_images_do_not_depend_on_the_rest_of_the_batch(setup) -> None:
    _, target, _ = setup
    attack = MIFace(steps=30, init="uniform")
    small = attack.invert(_white(target), [0, 1], seed=3)
    large = attack.invert(_white(target), [0, 1, 2, 3], seed=3)
    assert torch.allclose(small.images, large.images[:2], atol=1e-4)


def test_best_restart_is_kept(setup) -> None:
    _, target, _ = setup
    one = MIFace(steps=15, init="uniform", restarts=1).invert(_white(target), [0, 1, 2], seed=1)
    three = MIFace(steps=15, init="uniform", restarts=3).invert(_white(target), [0, 1, 2], seed=1)
    # restart 0 of the 3-restart run is the 1-restart run (same noise stream), so the kept
    # restart scores at least as well, and strictly better somewhere
    assert bool((three.scores >= one.scores - 1e-6).all())
    assert bool((three.scores > one.scores + 1e-6).any())


def test_gamma_stops_confident_images_early(setup) -> None:
    _, target, _ = setup
    access = _white(target)
    steps = 400
    rec = MIFace(steps=steps, gamma=0.05).invert(access, [0, 1, 2, 3, 4], seed=0)
    assert rec.queries < steps * 5  # every image froze before the last step
    assert float(rec.scores.min()) >= 0.95


def test_beta_stops_stalled_images(setup) -> None:
    _, target, _ = setup
    # a step too small to change the cost by 1e-4: the first check records the cost, the
    # second (beta=10 steps later at least) finds no progress and freezes both images
    rec = MIFace(steps=500, lr=1e-9, beta=10).invert(_white(target), [0, 1], seed=0)
    assert rec.queries == 2 * CHECK_EVERY * 2 + 2


@pytest.mark.parametrize("level", [BlackBox, LabelOnly])
def test_refuses_weaker_access(setup, level) -> None:
    _, target, _ = setup
    access = level.local(target, num_classes=K, image_shape=SHAPE)
    with pytest.raises(AccessError, match="needs white-box access"):
        MIFace(steps=5).invert(access, [0], seed=0)
    assert access.queries == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"steps": 0}, "The 'steps' parameter of attack 'mi-face' must be >= 1. Got 0 instead."),
        ({"lr": -1.0}, "The 'lr' parameter of attack 'mi-face' must be > 0.0. Got -1.0 instead."),
        ({"gamma": 1.0}, "The 'gamma' parameter of attack 'mi-face' must be < 1.0. Got 1.0"),
        ({"loss": "hinge"}, "The 'loss' parameter of attack 'mi-face'"),
        ({"step": 3},
         "attack 'mi-face' has no parameter 'step'; its parameters are: batch_size, steps,"),
        ({"restarts": 2, "init": "zeros"},
         "The 'restarts' parameter of attack 'mi-face' must be 1 when init='zeros'"),
        ({"init_scale": 0.0}, "The 'init_scale' parameter of attack 'mi-face' must be > 0.0."),
        ({"init": "normal"}, "The 'init' parameter of attack 'mi-face'"),
    ],
)
def test_bad_params_raise_config_error(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        MIFace(**params)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_returns_the_best_iterate_not_the_last(setup) -> None:
    _, target, _ = setup
    recording = _Recording(target)
    # a step so large that the pixels bounce between the box's faces: the cost goes up again
    rec = MIFace(steps=8, lr=100.0, loss="prob").invert(
        _white(recording), [0, 1, 2, 3, 4], per_label=2, seed=0
    )
    iterates = torch.stack(recording.inputs)  # (steps + 1, N, C, H, W): x_0 .. x_steps
    assert iterates.shape[0] == 9
    labels = rec.labels.repeat(9)
    with torch.inference_mode():
        prob = torch.softmax(target(iterates.flatten(0, 1)), 1)
        costs = (1 - prob[torch.arange(labels.numel()), labels]).view(9, -1)
        rec_prob = torch.softmax(target(rec.images), 1)[torch.arange(10), rec.labels]
    best_cost, best_step = costs.min(0)
    # the test is meaningful: for some images the last iterate is clearly worse, and the
    # best ones include the start (scored by step 1) and the final image (the closing pass)
    assert bool((costs[-1] > best_cost + 0.05).any()), costs
    assert bool((best_step == 0).any()) and bool((best_step == 8).any()), best_step
    assert torch.allclose(1 - rec_prob, best_cost, atol=1e-6)
    assert torch.equal(rec.images, iterates[best_step, torch.arange(10)])
    assert torch.allclose(rec.scores, rec_prob, atol=1e-6)


def test_per_label_samples_are_distinct_and_seeded(setup) -> None:
    _, target, _ = setup
    attack = MIFace(steps=40)  # default init: seeded dim noise, one start per image
    a = attack.invert(_white(target), [0, 3], per_label=3, seed=11)
    b = attack.invert(_white(target), [0, 3], per_label=3, seed=11)
    c = attack.invert(_white(target), [0, 3], per_label=3, seed=12)
    assert torch.equal(a.images, b.images) and torch.equal(a.scores, b.scores)
    assert not torch.equal(a.images, c.images)
    flat = a.images.flatten(1).view(2, 3, -1)
    for cls in flat:  # every pair of one class's samples differs visibly
        d = torch.cdist(cls, cls)
        assert float(d[~torch.eye(3, dtype=torch.bool)].min()) > 0.1, d
    assert float(a.images.mean()) < 0.35  # dim start: the dark background stays dark
    # the paper's zero start gives the same image for every sample of a class
    z = MIFace(steps=40, init="zeros").invert(_white(target), [0], per_label=3, seed=11)
    assert torch.equal(z.images[0], z.images[1]) and torch.equal(z.images[0], z.images[2])
