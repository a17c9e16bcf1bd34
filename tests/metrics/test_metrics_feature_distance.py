"""feat_dist: exact squared distances under a second extractor, and on digits."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from invbench.data.protocol import Protocol, Split
from invbench.errors import ConfigError
from invbench.metrics import EvalContext, Evaluator, evaluate, judge
from invbench.types import Reconstruction


class Scaled(nn.Module):
    """Features = scale * pixels (distances are exact multiples of the pixel distances)."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def features(self, x: Tensor) -> Tensor:
        return self.scale * x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[:, :2]


def points(rows: list[list[float]]) -> Tensor:
    return torch.tensor(rows, dtype=torch.float32)[:, None, None, :]  # (N, 1, 1, 2)


def toy_context() -> EvalContext:
    # private training points: class 0 at (0, 0) and (1, 0); class 1 at (1, 1)
    train = Split(points([[0, 0], [1, 0], [1, 1]]), torch.tensor([0, 0, 1]))
    protocol = Protocol(
        dataset="toy", private_train=train, private_test=train,
        public=Split(points([[0.5, 0.5]]), torch.tensor([2])), private_classes=(0, 1),
        public_classes=(2,), class_names=("a", "b"), seed=0,
    )

    def ev(scale: float, name: str) -> Evaluator:
        return Evaluator(Scaled(scale), arch="mlp", num_classes=2, image_shape=(1, 1, 2),
                         accuracy=1.0, name=name)

    return EvalContext(protocol=protocol, standard=ev(1.0, "std"), extractor=ev(3.0, "vgg"))


def digits_context(protocol) -> EvalContext:  # noqa: ANN001
    def ev(scale: float, name: str) -> Evaluator:
        return Evaluator(Scaled(scale), arch="resnet", num_classes=5, image_shape=(1, 8, 8),
                         accuracy=1.0, name=name)

    return EvalContext(protocol=protocol, standard=ev(1.0, "std"), extractor=ev(2.0, "vgg"))


def test_exact_distances_in_the_extractor_space() -> None:
    rec = Reconstruction(
        images=points([[0, 1], [0.5, 0], [0, 0]]),
        labels=torch.tensor([0, 0, 1]),  # the last sits on a class-0 point: must not count
        scores=torch.zeros(3),
    )
    got = judge(rec, toy_context(), metrics=["feat-dist"])
    # squared pixel distances to the nearest same-class point: 1, 0.25, 2; features are 3x
    # the pixels (the extractor, not the standard evaluator): squared x9
    assert got.per_image["img_feat_dist"].tolist() == pytest.approx([9.0, 2.25, 18.0])
    assert got.scores == {"feat_dist": pytest.approx(9 * 3.25 / 3)}


def test_training_images_are_at_zero_and_test_images_beat_noise(digits_protocol) -> None:  # noqa: ANN001
    ctx = digits_context(digits_protocol)
    train, test = digits_protocol.private_train, digits_protocol.private_test
    own = evaluate(Reconstruction(images=train.x[:30], labels=train.y[:30],
                                  scores=torch.zeros(30)), ctx, metrics=["feat-dist"])
    assert own == {"feat_dist": 0.0}
    real = evaluate(Reconstruction(images=test.x, labels=test.y, scores=torch.zeros(len(test))),
                    ctx, metrics=["feat-dist"])
    noise_x = torch.rand(test.x.shape, generator=torch.Generator().manual_seed(0))
    noise = evaluate(Reconstruction(images=noise_x, labels=test.y, scores=torch.zeros(len(test))),
                     ctx, metrics=["feat-dist"])
    assert 0 < real["feat_dist"] < noise["feat_dist"] / 2


def test_named_metric_without_extractor_is_refused() -> None:
    ctx = toy_context()
    ctx.extractor = None
    rec = Reconstruction(images=points([[0, 0]]), labels=torch.tensor([0]), scores=torch.zeros(1))
    with pytest.raises(ConfigError, match="extractor"):
        evaluate(rec, ctx, metrics=["feat-dist"])
