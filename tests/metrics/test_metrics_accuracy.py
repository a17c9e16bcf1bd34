"""Attack accuracy and the checks of evaluate(), on hand-made logits (exact values)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from invbench.data.protocol import Protocol, Split
from invbench.errors import ConfigError, DataError
from invbench.metrics import EvalContext, Evaluator, Metric, evaluate
from invbench.metrics.accuracy import AttackAccuracy, per_class_mean_std
from invbench.registry import METRICS
from invbench.types import Reconstruction


class PixelLogits(nn.Module):
    """A stub classifier whose logits are the image's pixels (image shape (1, 1, k))."""

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def toy_protocol(k: int) -> Protocol:
    x = torch.rand(4 * k, 1, 1, k, generator=torch.Generator().manual_seed(0))
    y = torch.arange(k).repeat(4)
    return Protocol(
        dataset="toy", private_train=Split(x, y), private_test=Split(x, y),
        public=Split(x[:2], torch.full((2,), k)), private_classes=tuple(range(k)),
        public_classes=(k,), class_names=tuple(str(c) for c in range(k)), seed=0,
    )


def stub_evaluator(k: int) -> Evaluator:
    return Evaluator(PixelLogits(), arch="pixel", num_classes=k, image_shape=(1, 1, k),
                     accuracy=1.0)


def _ctx(k: int, evaluator: Evaluator) -> EvalContext:
    return EvalContext(protocol=toy_protocol(k), standard=evaluator)


def recon(rows: list[list[float]], labels: list[int]) -> Reconstruction:
    images = torch.tensor(rows, dtype=torch.float32)[:, None, None, :]
    return Reconstruction(images=images, labels=torch.tensor(labels),
                          scores=torch.zeros(len(labels)))


# Six classes, so top-5 is not trivially 1. Per row: the logits and the true label.
ROWS = [
    ([0.9, 0.1, 0.2, 0.3, 0.4, 0.5], 0),  # top-1 hit
    ([0.1, 0.9, 0.8, 0.7, 0.6, 0.5], 0),  # class 0 ranked 6th: top-1 and top-5 miss
    ([0.9, 0.8, 0.1, 0.2, 0.3, 0.4], 1),  # ranked 2nd: top-5 hit only
    ([0.2, 0.9, 0.1, 0.3, 0.4, 0.5], 1),  # top-1 hit
    ([0.0, 0.05, 0.5, 0.6, 0.7, 0.8], 1),  # ranked 5th: top-5 hit only
    ([0.1, 0.2, 0.9, 0.3, 0.4, 0.5], 2),  # top-1 hit
]


def test_accuracy_exact_per_class_mean_and_std() -> None:
    rec = recon([r for r, _ in ROWS], [c for _, c in ROWS])
    out = evaluate(rec, _ctx(6, stub_evaluator(6)), metrics=["accuracy"])
    assert set(out) == {"acc1", "acc5", "acc1_std", "acc5_std"}
    # per class top-1: [1/2, 1/3, 1]; top-5: [1/2, 1, 1]; population std over classes
    assert out["acc1"] == pytest.approx(11 / 18)
    assert out["acc1_std"] == pytest.approx(math.sqrt(26) / 18)
    assert out["acc5"] == pytest.approx(5 / 6)
    assert out["acc5_std"] == pytest.approx(math.sqrt(1 / 18))
    assert out["acc1"] != pytest.approx(3 / 6)  # not the pooled mean over images


def test_top_k_is_capped_by_num_classes() -> None:
    rows = [[0.9, 0.5, 0.1], [0.9, 0.5, 0.1], [0.1, 0.9, 0.5]]
    out = AttackAccuracy().compute(
        recon(rows, [2, 0, 1]), _ctx(3, stub_evaluator(3))
    )
    assert out.pop("img_pred_pixel").tolist() == [0, 0, 1]  # the evaluator's label per image
    assert out == {"acc1": pytest.approx(2 / 3), "acc5": 1.0, "acc1_std": pytest.approx(
        math.sqrt(2) / 3), "acc5_std": 0.0}


def test_per_class_mean_std_helper() -> None:
    mean, std = per_class_mean_std(torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.tensor([0, 0, 1, 1]))
    assert (mean, std) == (pytest.approx(0.75), pytest.approx(0.25))


def test_registered_and_default_runs_all() -> None:
    assert {"accuracy", "knn"} <= set(METRICS.names())
    assert issubclass(METRICS.get("accuracy"), Metric)
    rec = recon([r for r, _ in ROWS], [c for _, c in ROWS])
    out = evaluate(rec, _ctx(6, stub_evaluator(6)))
    assert {"acc1", "acc5", "acc1_std", "acc5_std", "knn_dist", "knn_pixel_dist"} <= set(out)
    assert all(math.isfinite(v) for v in out.values())


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (torch.rand(2, 1, 1, 5), torch.tensor([0, 1]), "image shape"),
        (torch.rand(2, 1, 6), torch.tensor([0, 1]), r"\(N, C, H, W\)"),
        (torch.rand(2, 1, 1, 6), torch.tensor([0, 6]), r"labels \[6\] out of range"),
        (torch.rand(2, 1, 1, 6), torch.tensor([-1, 0]), r"labels \[-1\] out of range"),
        (torch.rand(2, 1, 1, 6), torch.tensor([0.0, 1.0]), "integers"),
        (torch.rand(2, 1, 1, 6), torch.tensor([0, 1, 2]), "2 images but 3 labels"),
        (torch.full((2, 1, 1, 6), float("nan")), torch.tensor([0, 1]), "NaN"),
        (torch.full((2, 1, 1, 6), 2.0), torch.tensor([0, 1]), r"\[0, 1\]"),
    ],
)
def test_bad_reconstructions_raise_data_error(images: Tensor, labels: Tensor, match: str) -> None:
    rec = Reconstruction(images=images, labels=labels, scores=torch.zeros(len(labels)))
    with pytest.raises(DataError, match=match):
        evaluate(rec, _ctx(6, stub_evaluator(6)), metrics=["accuracy"])


def test_evaluator_for_another_protocol_is_refused() -> None:
    rec = recon([r for r, _ in ROWS], [0] * len(ROWS))
    wrong = Evaluator(PixelLogits(), arch="pixel", num_classes=5, image_shape=(1, 1, 6),
                      accuracy=1.0)
    with pytest.raises(DataError, match="evaluator has 5 outputs"):
        evaluate(rec, _ctx(6, wrong))


def test_non_finite_result_and_unknown_metric() -> None:
    class Broken(Metric):
        def compute(self, recon, ctx):  # noqa: ANN001, ANN202
            return {"broken": float("nan")}

    rec = recon([r for r, _ in ROWS], [c for _, c in ROWS])
    with pytest.raises(DataError, match="broken=nan"):
        evaluate(rec, _ctx(6, stub_evaluator(6)), metrics=[Broken()])
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        evaluate(rec, _ctx(6, stub_evaluator(6)), metrics=["nope"])


def test_evaluator_needs_features() -> None:
    with pytest.raises(ConfigError, match="features"):
        Evaluator(nn.Linear(2, 2), arch="x", num_classes=2, image_shape=(1, 1, 2), accuracy=1.0)
