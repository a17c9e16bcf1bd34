"""Random erasing (MIDRE, TMLR 2025): erases what it says, trains through the shared loop."""

from __future__ import annotations

import pytest
import torch

from invbench.defenses import RandomErasing, TrainConfig
from invbench.defenses.base import TrainingData
from invbench.defenses.random_erasing import erase_random_squares
from invbench.errors import ConfigError
from invbench.registry import DEFENSES
from invbench.training import evaluate_accuracy


def test_registered() -> None:
    assert DEFENSES.get("random-erasing") is RandomErasing
    p = RandomErasing().params
    assert (p.p, p.scale_min, p.scale_max, p.fill) == (1.0, 0.1, 0.4, None)


@pytest.mark.parametrize("fraction", [0.04, 0.25, 0.64])
def test_erases_the_stated_fraction_with_the_fill_and_nothing_else(fraction: float) -> None:
    x = torch.rand(200, 2, 10, 10)
    fill = torch.tensor([0.25, 0.75])
    out, mask = erase_random_squares(x, scale=(fraction, fraction), fill=fill,
                                     generator=torch.Generator().manual_seed(0))
    side = round((fraction * 100) ** 0.5)
    assert bool((mask.flatten(1).sum(1) == side * side).all())  # one side x side square each
    m = mask.expand_as(x)
    assert torch.equal(out[~m], x[~m])  # untouched outside the square
    assert torch.equal(out[:, 0][mask[:, 0]], torch.full((int(mask.sum()),), 0.25))
    assert torch.equal(out[:, 1][mask[:, 0]], torch.full((int(mask.sum()),), 0.75))
    # random locations: the squares are not all in one place
    tops = mask.any(dim=3).float().argmax(dim=2).flatten()
    assert tops.unique().numel() > 1 or side == 10


def test_probability_and_mean_area() -> None:
    x = torch.zeros(4000, 1, 20, 20)
    _, mask = erase_random_squares(x, scale=(0.1, 0.4), p=0.5,
                                   generator=torch.Generator().manual_seed(1))
    erased = mask.flatten(1).any(1)
    assert abs(float(erased.float().mean()) - 0.5) < 0.03
    area = mask.flatten(1).sum(1)[erased].float() / 400
    assert abs(float(area.mean()) - 0.25) < 0.02  # U(0.1, 0.4) on average, up to rounding


def test_training_sees_erased_batches_and_still_learns(digits_protocol) -> None:
    defense = RandomErasing(scale_min=0.3, scale_max=0.3)
    data = TrainingData.from_protocol(digits_protocol)
    hooks = defense.train_hooks(None, data, TrainConfig(), 0)
    xb = data.private_train.x[:32]
    out, _ = hooks["batch_fn"](xb, data.private_train.y[:32], torch.Generator().manual_seed(0))
    mean = float(data.private_train.x.mean())
    changed = (out != xb).flatten(1)
    assert bool(changed.any(1).all())  # every image was erased (p = 1)
    assert torch.allclose(out[out != xb], torch.full_like(out[out != xb], mean))
    model = defense.train(digits_protocol, config=TrainConfig(epochs=6), seed=0)
    acc = evaluate_accuracy(model, digits_protocol.private_test.x, digits_protocol.private_test.y)
    assert acc > 0.8, acc


def test_bad_params() -> None:
    with pytest.raises(ConfigError, match="'scale_min' parameter of defense 'random-erasing'"):
        RandomErasing(scale_min=0.5, scale_max=0.2)
    with pytest.raises(ConfigError, match="'p' parameter"):
        RandomErasing(p=1.5)
