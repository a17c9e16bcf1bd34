"""Tests for MIDDecisionTreeClassifier (invbench.tabular.mid_tree)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from invbench.errors import ConfigError
from invbench.tabular.data import synthetic_warfarin
from invbench.tabular.id3 import GainPolicy, ID3Classifier, QuantileBinner, build_tree
from invbench.tabular.map_tree import MAPTreeAttack
from invbench.tabular.mid_tree import (
    MIDDecisionTreeClassifier,
    MIDSplitScore,
    prediction_entropy,
)


@pytest.fixture(scope="module")
def split():
    data = synthetic_warfarin(n=2000, seed=0)
    return data.train_test_split(test_fraction=0.3, seed=0)


def test_lam_zero_is_plain_id3(split) -> None:
    train, _ = split
    mid = MIDDecisionTreeClassifier(lam=0.0, max_depth=6, n_bins=5).fit(train.X, train.y_class)
    id3 = ID3Classifier(max_depth=6, n_bins=5).fit(train.X, train.y_class)
    assert mid.tree_.n_nodes == id3.tree_.n_nodes > 10
    np.testing.assert_array_equal(mid.tree_.feature, id3.tree_.feature)
    np.testing.assert_array_equal(mid.leaf_counts_, id3.leaf_counts_)


def test_larger_lam_lowers_prediction_entropy(split) -> None:
    train, _ = split
    lams = [0.0, 0.01, 0.03, 0.1, 1.0]
    h = [
        prediction_entropy(
            MIDDecisionTreeClassifier(lam=lam).fit(train.X, train.y_class), train.X
        )
        for lam in lams
    ]
    assert all(a >= b - 1e-12 for a, b in zip(h, h[1:], strict=False))  # non-increasing
    assert h[0] > 0.8 and h[-1] < 0.5 * h[0]


def test_larger_lam_lowers_map_tree_attack_accuracy(split) -> None:
    train, test = split
    accs = []
    for lam in (0.0, 0.1):
        tree = MIDDecisionTreeClassifier(lam=lam).fit(train.X, train.y_class)
        attack = MAPTreeAttack(mode="black-box").fit(tree, train)
        accs.append(float(np.mean(attack.infer(tree, train) == train.s)))
    # measured: 0.49 (lam 0) -> 0.37 (lam 0.1, the majority baseline) on training members
    assert accs[1] < accs[0] - 0.05


def test_penalty_bookkeeping_matches_the_trees_predictions(split) -> None:
    # after growing, the criterion's running prediction counts must equal the counts of the
    # tree's actual predictions on the training data: Delta H(Y^) was computed on the truth
    train, _ = split
    binner = QuantileBinner(n_bins=4).fit(train.X)
    score = MIDSplitScore(lam=0.02)
    tree = build_tree(binner.transform(train.X), train.y_class, n_values=binner.n_values_,
                      n_classes=3, max_depth=5, policy=GainPolicy(score))
    pred = np.argmax(tree.value[tree.apply(binner.transform(train.X))], axis=1)
    np.testing.assert_allclose(score.pred_counts, np.bincount(pred, minlength=3))


def test_hand_example_high_lam_collapses_predictions() -> None:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = [0, 0, 1, 1]
    # the split on column 0 gains 1 bit of IG_Y and raises H(Y^) from 0 to 1 bit:
    # score = 1 - lam * 1, taken for lam < 1, refused for lam >= 1
    assert MIDDecisionTreeClassifier(lam=0.9).fit(X, y).predict(X).tolist() == y
    assert MIDDecisionTreeClassifier(lam=1.0).fit(X, y).predict(X).tolist() == [0, 0, 0, 0]


def test_sklearn_conformance(split) -> None:
    train, _ = split
    est = MIDDecisionTreeClassifier(lam=0.2, max_depth=3)
    assert est.get_params()["lam"] == 0.2
    other = clone(est).set_params(lam=0.0)
    assert other.lam == 0.0 and est.lam == 0.2
    pipe = Pipeline([("scale", StandardScaler()), ("tree", clone(est))])
    pipe.fit(train.X, train.y_class)
    assert pipe.predict(train.X).shape == (train.n,)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lam": -1},
         "The 'lam' parameter of MIDDecisionTreeClassifier must be a float >= 0. "
         "Got -1 instead."),
        ({"max_depth": 0},
         "The 'max_depth' parameter of MIDDecisionTreeClassifier must be an int >= 1. "
         "Got 0 instead."),
        ({"lam": float("nan")},
         "The 'lam' parameter of MIDDecisionTreeClassifier must be a float >= 0. "
         "Got nan instead."),
    ],
)
def test_bad_params(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        MIDDecisionTreeClassifier(**params).fit(np.eye(4), [0, 1, 0, 1])
    assert str(info.value) == message
