"""The headline success rate, the ensemble vote and the Wilson interval, by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from invbench.errors import DataError
from invbench.metrics import EvalContext, Evaluator, evaluate, judge
from invbench.metrics.base import is_rate
from invbench.metrics.ensemble import majority_hit
from invbench.metrics.success import calibrate_thresholds, wilson_interval
from invbench.types import Reconstruction


def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson_interval(8, 10)
    # hand-computed: centre (0.8 + z^2/20)/(1 + z^2/10), half-width as in Wilson (1927)
    z = 1.959963984540054
    c = (0.8 + z * z / 20) / (1 + z * z / 10)
    h = z * math.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert lo == pytest.approx(c - h) and hi == pytest.approx(c + h)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 20)[0] == 0.0 and 0.1 < wilson_interval(0, 20)[1] < 0.2
    with pytest.raises(DataError):
        wilson_interval(3, 0)


def test_majority_needs_more_than_half_of_the_members():
    votes = torch.tensor([[0, 1, 2], [0, 2, 2], [3, 1, 0]])  # 3 members, 3 images
    labels = torch.tensor([0, 1, 0])
    assert majority_hit(votes, labels).tolist() == [True, True, False]
    four = torch.tensor([[0], [0], [1], [1]])
    assert majority_hit(four, torch.tensor([0])).tolist() == [False]  # 2 of 4 is no majority


class _Fixed(nn.Module):
    """Features are the flattened pixels; logits are fixed per-image from a lookup of pixel 0."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table  # (levels, k) logits chosen by the first pixel's value

    def features(self, x):
        return x.flatten(1)

    def forward(self, x):
        idx = (x.flatten(1)[:, 0] * (self.table.shape[0] - 1)).round().long()
        return self.table[idx]


def _ev(table, name, k=2, shape=(1, 1, 2)):
    return Evaluator(_Fixed(table), arch="mlp", num_classes=k, image_shape=shape, accuracy=1.0,
                     name=name)


def _protocol(train_x, train_y):
    from invbench.data.protocol import Protocol, Split

    return Protocol(
        dataset="toy", private_train=Split(train_x, train_y), private_test=Split(train_x, train_y),
        public=Split(train_x[:1], torch.tensor([9])), private_classes=(0, 1),
        public_classes=(9,), class_names=("a", "b"), seed=0,
    )


def test_success_counts_vote_and_distance_by_hand():
    # private train: class 0 at (0, 0), class 1 at (1, 1)
    tx = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]])
    ty = torch.tensor([0, 1])
    p = _protocol(tx, ty)
    # logits by first pixel: 0 -> class 0, 0.5 -> class 1, 1 -> class 1
    table = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.0, 5.0]])
    members = (_ev(table, "a"), _ev(table, "b"), _ev(table, "robust"))
    ctx = EvalContext(protocol=p, standard=members[0], robust=members[2], ensemble=members,
                      thresholds=torch.tensor([0.1, 0.1], dtype=torch.float64), tta=False)
    # image 0: class 0 at (0, 0.2): vote 0, sq dist 0.04 -> success
    # image 1: class 0 at (0.5, 0.0): vote 1 -> fails the vote
    # image 2: class 1 at (1, 0.5): vote 1, sq dist 0.25 > 0.1 -> fails the distance
    # image 3: class 1 at (1, 1): success
    x = torch.tensor([[[[0.0, 0.2]]], [[[0.5, 0.0]]], [[[1.0, 0.5]]], [[[1.0, 1.0]]]])
    rec = Reconstruction(images=x, labels=torch.tensor([0, 0, 1, 1]), scores=torch.zeros(4))
    j = judge(rec, ctx, metrics=["success", "ensemble"])
    assert j.per_image["img_success"].tolist() == [1, 0, 0, 1]
    assert j.per_image["img_robust_dist"].tolist() == pytest.approx([0.04, 0.25, 0.25, 0.0])
    assert j.scores["success"] == 0.5
    lo, hi = wilson_interval(2, 4)
    assert (j.scores["success_lo"], j.scores["success_hi"]) == (lo, hi)
    assert j.scores["ensemble_acc1"] == pytest.approx((0.5 + 1.0) / 2)
    assert j.scores["acc1_robust"] == pytest.approx(0.75) and j.scores["agreement"] == 1.0


def test_thresholds_are_the_per_class_quantile_of_held_out_distances():
    tx = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]])
    p = _protocol(tx, torch.tensor([0, 1]))
    table = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    robust = _ev(table, "robust")
    ctx = EvalContext(protocol=p, standard=robust, robust=robust)
    # class 0 held-out points at distances 0.01, 0.04, 0.09, 0.16 from (0, 0)
    held = torch.tensor([[[[0.0, v]]] for v in (0.1, 0.2, 0.3, 0.4)])
    thr = calibrate_thresholds(held, torch.zeros(4, dtype=torch.long), ctx, num_classes=2,
                               quantile=0.5)
    assert thr[0].item() == pytest.approx((0.04 + 0.09) / 2)  # the median, linear interpolation
    assert thr[1].item() == float("-inf")  # no calibration images: nothing can succeed


def test_rate_keys_cover_accuracies_and_success_not_spreads():
    for key in ("acc1", "acc5", "acc1_robust", "acc1_vit", "ensemble_acc1", "success"):
        assert is_rate(key), key
    for key in ("acc1_std", "success_lo", "success_hi", "knn_dist", "fid", "agreement"):
        assert not is_rate(key), key


def test_explicitly_named_metric_needs_its_evaluators():
    from invbench.errors import ConfigError

    tx = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]])
    p = _protocol(tx, torch.tensor([0, 1]))
    ev = _ev(torch.tensor([[5.0, 0.0], [0.0, 5.0]]), "resnet")
    rec = Reconstruction(images=tx, labels=torch.tensor([0, 1]), scores=torch.zeros(2))
    with pytest.raises(ConfigError, match="needs the evaluation context's"):
        evaluate(rec, EvalContext(protocol=p, standard=ev), metrics=["success"])
    # by default, metrics the context cannot serve are left out, the others run
    assert "acc1" in evaluate(rec, EvalContext(protocol=p, standard=ev))


def test_judge_computes_votes_and_robust_features_once_per_reconstruction():
    tx = torch.tensor([[[[0.0, 0.0]]], [[[1.0, 1.0]]]])
    p = _protocol(tx, torch.tensor([0, 1]))
    table = torch.tensor([[5.0, 0.0], [0.0, 5.0], [0.0, 5.0]])
    members = (_ev(table, "a"), _ev(table, "b"), _ev(table, "robust"))
    calls = {"forward": 0, "features": 0}
    for ev in members:
        fwd, feat = ev.model.forward, ev.model.features

        def counted_forward(x, _f=fwd):
            calls["forward"] += 1
            return _f(x)

        def counted_features(x, _f=feat):
            calls["features"] += 1
            return _f(x)

        ev.model.forward, ev.model.features = counted_forward, counted_features
    ctx = EvalContext(protocol=p, standard=members[0], robust=members[2], ensemble=members,
                      thresholds=torch.tensor([0.1, 0.1], dtype=torch.float64), tta=False)
    rec = Reconstruction(images=tx.clone(), labels=torch.tensor([0, 1]), scores=torch.zeros(2))
    members[2].private_features(p)  # the private side is cached by the evaluator itself
    calls.update(forward=0, features=0)
    j = judge(rec, ctx, metrics=["success", "ensemble", "fid", "prdc"])
    assert j.scores["success"] == 1.0
    assert calls["forward"] == 3  # one vote per member, shared by success and ensemble
    assert calls["features"] == 1  # success, fid and prdc share the robust features
    assert ctx._memo is None  # nothing outlives the judgement
