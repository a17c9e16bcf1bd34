"""The bring-your-own-model API: invbench.invert on any logits module."""

from __future__ import annotations

import pytest
import torch

import invbench
from invbench.errors import ConfigError
from invbench.metrics import EvalContext, evaluate, train_evaluator


def test_invert_mi_face_on_a_plain_module(digits_protocol, digits_target):
    p = digits_protocol
    digits_target.train()  # invert() must evaluate in eval mode and restore the mode after
    rec = invbench.invert(
        "mi-face", digits_target, labels=[0, 1, 2, 3, 4], image_shape=(1, 8, 8), steps=150
    )
    assert digits_target.training
    digits_target.eval()
    assert rec.images.shape == (5, 1, 8, 8) and rec.labels.tolist() == [0, 1, 2, 3, 4]
    assert 0 <= float(rec.images.min()) and float(rec.images.max()) <= 1
    ev = train_evaluator(p, epochs=5, seed=1)
    scores = evaluate(rec, EvalContext(protocol=p, standard=ev))
    assert scores["acc1"] >= 0.6  # chance is 0.2


def test_invert_is_deterministic(digits_target):
    a = invbench.invert("mi-face", digits_target, labels=[1], image_shape=(1, 8, 8), steps=20,
                        init="uniform", seed=3)
    b = invbench.invert("mi-face", digits_target, labels=[1], image_shape=(1, 8, 8), steps=20,
                        init="uniform", seed=3)
    assert torch.equal(a.images, b.images)


def test_invert_refuses_attacks_that_need_public_data(digits_target):
    with pytest.raises(ConfigError, match="needs white-box access and public data"):
        invbench.invert("gmi", digits_target, labels=[0], image_shape=(1, 8, 8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels": [7]}, "labels \\[7\\] out of range: the target has 5 classes"),
        ({"labels": [0], "steps": 0}, "The 'steps' parameter of attack 'mi-face' must be >= 1"),
        ({"labels": [0], "image_shape": (8, 8)}, "image_shape must be \\(C, H, W\\)"),
    ],
)
def test_invert_bad_input(digits_target, kwargs, match):
    args = {"image_shape": (1, 8, 8), **kwargs}
    with pytest.raises(ConfigError, match=match):
        invbench.invert("mi-face", digits_target, **args)
