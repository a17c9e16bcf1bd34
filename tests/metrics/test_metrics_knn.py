"""KNN distance: exact squared distances on hand-made points, memoised private features."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from invbench.cache import Cache
from invbench.data.protocol import Protocol, Split
from invbench.errors import DataError
from invbench.metrics import EvalContext, Evaluator, evaluate
from invbench.metrics.knn import KnnDistance, nearest_same_class, nearest_same_class_sq_dist
from invbench.types import Reconstruction


class ScaledFlatten(nn.Module):
    """Features = 2 * pixels (so feature and pixel distances differ); counts images seen."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def features(self, x: Tensor) -> Tensor:
        self.seen += int(x.shape[0])
        return 2.0 * x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


def points(rows: list[list[float]]) -> Tensor:
    return torch.tensor(rows, dtype=torch.float32)[:, None, None, :]  # (N, 1, 1, 2)


def toy_protocol(train_labels: list[int] | None = None) -> Protocol:
    # private training points: class 0 at (0, 0) and (1, 0); class 1 at (1, 1)
    train = Split(points([[0, 0], [1, 0], [1, 1]]), torch.tensor(train_labels or [0, 0, 1]))
    return Protocol(
        dataset="toy", private_train=train, private_test=train,
        public=Split(points([[0.5, 0.5]]), torch.tensor([3])), private_classes=(0, 1, 2),
        public_classes=(3,), class_names=("a", "b", "c"), seed=0,
    )


def evaluator(**kw: object) -> Evaluator:
    return Evaluator(ScaledFlatten(), arch="flat", num_classes=3, image_shape=(1, 1, 2),
                     accuracy=1.0, **kw)


def ctx(protocol: Protocol | None = None, ev: Evaluator | None = None) -> EvalContext:
    return EvalContext(protocol=protocol or toy_protocol(), standard=ev or evaluator())


def test_knn_exact_distances_same_class_only() -> None:
    rec = Reconstruction(
        images=points([[0, 1], [0.5, 0], [0, 0]]),
        labels=torch.tensor([0, 0, 1]),  # the last one sits on a class-0 point: must not count
        scores=torch.zeros(3),
    )
    out = evaluate(rec, ctx(), metrics=["knn"])
    # squared pixel distances to the nearest same-class point: 1, 0.25, 2
    assert out["knn_pixel_dist"] == pytest.approx(3.25 / 3 / 2)  # / (C*H*W = 2)
    assert out["knn_dist"] == pytest.approx(4 * 3.25 / 3)  # features are 2x pixels: squared x4


def test_identical_points_give_exactly_zero() -> None:
    p = toy_protocol()
    rec = Reconstruction(images=p.private_train.x, labels=p.private_train.y, scores=torch.zeros(3))
    out = KnnDistance().compute(rec, ctx(p))
    assert out["knn_dist"] == 0.0 and out["knn_pixel_dist"] == 0.0
    assert out["img_knn_dist"].tolist() == [0.0, 0.0, 0.0]


def test_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    q, r = torch.randn(40, 7, generator=g), torch.randn(60, 7, generator=g)
    ql, rl = torch.randint(0, 4, (40,), generator=g), torch.arange(60) % 4
    got = nearest_same_class_sq_dist(q, ql, r, rl)
    want = [min(float(((q[i] - r[j]) ** 2).sum()) for j in range(60) if rl[j] == ql[i])
            for i in range(40)]
    assert got.tolist() == pytest.approx(want, rel=1e-6)


def test_nearest_same_class_returns_the_index_into_refs() -> None:
    q = torch.tensor([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0]])
    refs = torch.tensor([[3.0, 4.0], [1.0, 1.0], [6.0, 8.0], [2.0, 2.0], [1.0, 1.0]])
    ref_labels = torch.tensor([0, 1, 0, 1, 0])
    dist, index = nearest_same_class(q, torch.tensor([0, 0, 1]), refs, ref_labels)
    # class 0 refs: 0 (3,4), 2 (6,8), 4 (1,1); class 1 refs: 1 (1,1), 3 (2,2)
    # (0,0) -> (1,1) at index 4: 2; (5,5) -> (3,4) at index 0: 4 + 1; (1,1) -> index 1: 0
    assert dist.tolist() == pytest.approx([2.0, 5.0, 0.0])
    assert index.tolist() == [4, 0, 1]
    assert torch.equal(nearest_same_class_sq_dist(q, torch.tensor([0, 0, 1]), refs, ref_labels),
                       dist)
    # equally near references: the first one
    ties = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # all at distance 1 from (0,0)
    dist, index = nearest_same_class(q[:1], torch.tensor([0]), ties, torch.tensor([1, 0, 0]))
    assert dist.tolist() == [1.0] and index.tolist() == [1]


def test_class_without_training_images_is_an_error() -> None:
    rec = Reconstruction(images=points([[0, 0]]), labels=torch.tensor([2]), scores=torch.zeros(1))
    with pytest.raises(DataError, match="class 2 has no private training images"):
        evaluate(rec, ctx(), metrics=["knn"])


def test_private_features_memoised_and_cached(tmp_path) -> None:  # noqa: ANN001
    p = toy_protocol()
    rec = Reconstruction(images=points([[0, 1]]), labels=torch.tensor([0]), scores=torch.zeros(1))
    ev = evaluator(cache=Cache(tmp_path), cache_key="toy-evaluator")
    first = KnnDistance().compute(rec, ctx(p, ev))["knn_dist"]
    assert ev.model.seen == 3 + 1  # private train once, then the reconstruction
    assert KnnDistance().compute(rec, ctx(p, ev))["knn_dist"] == first
    assert ev.model.seen == 3 + 1 + 1  # memoised: only the reconstruction again
    # a fresh evaluator with the same cache key reads the stored features
    ev2 = evaluator(cache=Cache(tmp_path), cache_key="toy-evaluator")
    assert KnnDistance().compute(rec, ctx(p, ev2))["knn_dist"] == first
    assert ev2.model.seen == 1
    # a different key is a different evaluator: computed again
    ev3 = evaluator(cache=Cache(tmp_path), cache_key="other")
    KnnDistance().compute(rec, ctx(p, ev3))
    assert ev3.model.seen == 3 + 1
