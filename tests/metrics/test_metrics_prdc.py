"""Precision, recall, density, coverage: hand-computed k-NN radii on a line, and on digits."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from invbench.errors import ConfigError
from invbench.metrics import EvalContext, Evaluator, evaluate
from invbench.metrics._features import balanced_real_index
from invbench.metrics.prdc import prdc
from invbench.types import Reconstruction


class Projection(nn.Module):
    """Features = pixels times a fixed random (64, 8) matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w", torch.randn(64, 8, generator=torch.Generator().manual_seed(0)))

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.w

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[:, :5]


def evaluator(name: str) -> Evaluator:
    return Evaluator(Projection(), arch="resnet", num_classes=5, image_shape=(1, 8, 8),
                     accuracy=1.0, name=name)


def line(*values: float) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_hand_computed_radii_on_a_line() -> None:
    # k = 2. Reals 0 1 2 | 10 11 12: 2nd-NN radii r = 2 1 2 | 2 1 2.
    # Fakes 0.5 1.5 2.5 -5: 2nd-NN radii among fakes s = 2 1 2 6.5.
    real, fake = line(0, 1, 2, 10, 11, 12), line(0.5, 1.5, 2.5, -5)
    out = prdc(real, fake, k=2)
    # precision: 0.5 (|0.5-0| < 2), 1.5 (|1.5-1| < 1), 2.5 (|2.5-2| < 2) inside; -5 not -> 3/4
    assert out["precision"] == 0.75
    # recall: reals 0, 1, 2 lie in fake balls (e.g. 2 in B(1.5, 1)); 10-12 in none -> 3/6
    assert out["recall"] == 0.5
    # density: real balls holding each fake: 0.5 -> {0,1,2}, 1.5 -> {0,1,2}, 2.5 -> {2}, -5 -> {}
    # = (3 + 3 + 1 + 0) / (k * 4)
    assert out["density"] == 7 / 8
    # coverage: the balls of 0, 1, 2 hold a fake, those of 10, 11, 12 do not -> 3/6
    assert out["coverage"] == 0.5


def test_identical_clouds_score_one() -> None:
    pts = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    assert prdc(pts, pts.clone()) == {
        "precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0
    }


def test_undefined_below_k_plus_one_points() -> None:
    big, small = line(0, 1, 2, 3, 4), line(0.5, 1.5, 2.5)
    out = prdc(small, big, k=3)  # 3 reals: no real radii
    assert out["precision"] is None and out["density"] is None and out["coverage"] is None
    assert out["recall"] == 1.0
    out = prdc(big, small, k=3)  # 3 fakes: no fake radii
    assert out["recall"] is None and out["precision"] == 1.0


def test_metric_on_digits_prefers_private_images_to_noise(digits_protocol) -> None:  # noqa: ANN001
    test = digits_protocol.private_test
    ctx = EvalContext(protocol=digits_protocol, standard=evaluator("std"),
                      robust=evaluator("robust"))
    real = evaluate(Reconstruction(images=test.x, labels=test.y, scores=torch.zeros(len(test))),
                    ctx, metrics=["prdc"])
    noise_x = torch.rand(test.x.shape, generator=torch.Generator().manual_seed(2))
    noise = evaluate(Reconstruction(images=noise_x, labels=test.y, scores=torch.zeros(len(test))),
                     ctx, metrics=["prdc"])
    assert set(real) == {"precision", "recall", "density", "coverage"}
    for key in real:
        assert real[key] > noise[key] + 0.3, key
    # the same reals as the fid metric, in the robust evaluator's features
    idx = balanced_real_index(test.y, digits_protocol.private_train.y)
    want = prdc(ctx.robust.features(digits_protocol.private_train.x[idx]),
                ctx.robust.features(test.x))
    assert real == pytest.approx(want)


def test_named_metric_without_robust_evaluator_is_refused(digits_protocol) -> None:  # noqa: ANN001
    test = digits_protocol.private_test
    ctx = EvalContext(protocol=digits_protocol, standard=evaluator("std"))
    rec = Reconstruction(images=test.x, labels=test.y, scores=torch.zeros(len(test)))
    with pytest.raises(ConfigError, match="robust"):
        evaluate(rec, ctx, metrics=["prdc"])
