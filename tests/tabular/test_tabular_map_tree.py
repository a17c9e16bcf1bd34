"""Tests for MAPTreeAttack (invbench.tabular.map_tree), black-box and white-box."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.tree import DecisionTreeClassifier

from invbench.errors import AccessError, ConfigError, DataError
from invbench.tabular.data import TabularData, synthetic_warfarin
from invbench.tabular.dp_tree import DPID3Classifier
from invbench.tabular.id3 import ID3Classifier
from invbench.tabular.map_tree import MAPTreeAttack
from invbench.tabular.metrics import majority_baseline
from invbench.tabular.mid_tree import MIDDecisionTreeClassifier


@pytest.fixture(scope="module")
def synth() -> TabularData:
    return synthetic_warfarin(n=2000, seed=0)


def _acc(attack: MAPTreeAttack, model, data: TabularData) -> float:
    return float(np.mean(attack.infer(model, data) == data.s))


def _tiny(s: list[int], z: list[int], y: list[int]) -> TabularData:
    """Sensitive attribute s in {a, b} (one-hot, columns 0-1) and a binary feature z."""
    s_arr = np.asarray(s, dtype=np.int64)
    X = np.column_stack([s_arr == 0, s_arr == 1, np.asarray(z)]).astype(float)
    yc = np.asarray(y, dtype=np.int64)
    return TabularData(
        name="tiny", X=X, y=yc.astype(float), y_class=yc,
        feature_names=("s=a", "s=b", "z"), groups={"s": (0, 1), "z": (2,)},
        categories={"s": ("a", "b")}, sensitive="s", s=s_arr,
    )


def test_hand_computed_estimators_on_a_tree_that_splits_on_the_sensitive_attribute() -> None:
    # s=a: 6 records of class 0 and 2 of class 1; s=b: 1 of class 0, 3 of class 1
    s = [0] * 8 + [1] * 4
    y = [0] * 6 + [1] * 2 + [0] + [1] * 3
    data = _tiny(s, [0] * 12, y)
    tree = ID3Classifier(max_depth=2).fit(data.X, data.y_class)
    # root splits on column 0 (tie with column 1 goes to 0): node 1 = (s=b) [1, 3],
    # node 2 = (s=a) [6, 2]
    np.testing.assert_allclose(tree.leaf_counts_[1:], [[1, 3], [6, 2]])
    probe = data.subset([0, 6])  # one record observed with y=0, one with y=1
    # white-box: both values have their own leaf -> score = n_{leaf(v), y}
    #   y=0: a -> 6, b -> 1 -> (6/7, 1/7);  y=1: a -> 2, b -> 3 -> (2/5, 3/5)
    wb = MAPTreeAttack(mode="white-box").fit(tree, data)
    np.testing.assert_allclose(wb.prior_, [8 / 12, 4 / 12])
    np.testing.assert_allclose(wb.scores(tree, probe), [[6 / 7, 1 / 7], [0.4, 0.6]])
    assert wb.infer(tree, probe).tolist() == [0, 1]
    # black-box: the tree predicts 0 for s=a, 1 for s=b. Confusion C[y, y^] + 1:
    #   [[6+1, 1+1], [2+1, 3+1]] = [[7, 2], [3, 4]];  pi(y | y^) = columns normalised:
    #   pi(.|0) = (0.7, 0.3), pi(.|1) = (1/3, 2/3).
    #   y=0: a -> 0.7 * 2/3 = 7/15 = 21/45, b -> 1/3 * 1/3 = 5/45  -> (21/26, 5/26)
    #   y=1: a -> 0.3 * 2/3 = 1/5 = 9/45,   b -> 2/3 * 1/3 = 10/45 -> (9/19, 10/19)
    bb = MAPTreeAttack(mode="black-box").fit(tree, data)
    np.testing.assert_allclose(bb.confusion_, [[7, 2], [3, 4]])
    np.testing.assert_allclose(bb.scores(tree, probe), [[21 / 26, 5 / 26], [9 / 19, 10 / 19]])
    assert bb.infer(tree, probe).tolist() == [0, 1]


def test_white_box_falls_back_to_the_prior_when_the_tree_ignores_the_attribute() -> None:
    # y depends on z only: the tree never tests s, so every value shares one leaf and the
    # leaf's mass is split by the prior (0.75 / 0.25)
    s = [0, 0, 0, 1] * 4
    z = [0, 1] * 8
    data = _tiny(s, z, z)
    tree = ID3Classifier(max_depth=3).fit(data.X, data.y_class)
    assert set(tree.tree_.feature[tree.tree_.feature >= 0].tolist()) == {2}
    wb = MAPTreeAttack(mode="white-box").fit(tree, data)
    np.testing.assert_allclose(wb.scores(tree, data), np.tile([0.75, 0.25], (16, 1)))


@pytest.mark.parametrize("mode", ["black-box", "white-box"])
def test_beats_the_majority_baseline_on_an_undefended_tree(synth: TabularData, mode: str) -> None:
    train, test = synth.train_test_split(test_fraction=0.3, seed=0)
    tree = MIDDecisionTreeClassifier(lam=0.0).fit(train.X, train.y_class)
    attack = MAPTreeAttack(mode=mode).fit(tree, train)
    for part in (train, test):
        base = majority_baseline(train.s, part.s)
        # measured (3 splits, n=3000): ~0.47-0.49 against a baseline of ~0.35-0.37
        assert _acc(attack, tree, part) > base + 0.06


def test_white_box_at_least_as_accurate_as_black_box_on_average(synth: TabularData) -> None:
    # deeper trees (max_depth 8) keep more records per leaf apart; averaged over 3 splits the
    # white-box counts estimator is ahead (measured ~0.55 vs ~0.53 on members).
    wb_acc, bb_acc = [], []
    for seed in range(3):
        train, test = synth.train_test_split(test_fraction=0.3, seed=seed)
        tree = ID3Classifier(max_depth=8).fit(train.X, train.y_class)
        for mode, out in (("white-box", wb_acc), ("black-box", bb_acc)):
            attack = MAPTreeAttack(mode=mode).fit(tree, train)
            out += [_acc(attack, tree, train), _acc(attack, tree, test)]
    assert np.mean(wb_acc) >= np.mean(bb_acc)


def test_foreign_sklearn_tree_black_box_only(synth: TabularData) -> None:
    train, test = synth.train_test_split(test_fraction=0.3, seed=0)
    sk = DecisionTreeClassifier(max_depth=5, random_state=0).fit(train.X, train.y_class)
    attack = MAPTreeAttack(mode="black-box").fit(sk, train)
    assert _acc(attack, sk, test) > majority_baseline(train.s, test.s) + 0.05
    with pytest.raises(AccessError, match="white-box"):
        MAPTreeAttack(mode="white-box").fit(sk, train)


def test_dp_tree_with_tiny_budget_leaks_little(synth: TabularData) -> None:
    train, _ = synth.train_test_split(test_fraction=0.3, seed=0)
    base = majority_baseline(train.s, train.s)
    for mode in ("black-box", "white-box"):
        accs = []
        for seed in range(3):
            tree = DPID3Classifier(epsilon=0.05, random_state=seed).fit(train.X, train.y_class)
            accs.append(_acc(MAPTreeAttack(mode=mode).fit(tree, train), tree, train))
        assert np.mean(accs) < base + 0.03


def test_uses_neither_the_sensitive_columns_nor_s(synth: TabularData) -> None:
    data = synth.subset(np.arange(600))
    tree = ID3Classifier().fit(data.X, data.y_class)
    hidden = dataclasses.replace(
        data, X=data.with_sensitive(data.X, 0), s=np.zeros_like(data.s)
    )
    for mode in ("black-box", "white-box"):
        attack = MAPTreeAttack(mode=mode).fit(tree, data)
        np.testing.assert_array_equal(attack.infer(tree, data), attack.infer(tree, hidden))


def test_params_and_errors(synth: TabularData) -> None:
    data = synth.subset(np.arange(300))
    tree = ID3Classifier().fit(data.X, data.y_class)
    attack = MAPTreeAttack(mode="white-box", prior="uniform")
    assert clone(attack).get_params() == {"mode": "white-box", "prior": "uniform"}
    assert attack.access == "white-box"
    np.testing.assert_allclose(attack.fit(tree, data).prior_, [1 / 3] * 3)
    with pytest.raises(ConfigError) as info:
        MAPTreeAttack(mode="grey-box").fit(tree, data)
    assert str(info.value) == (
        "The 'mode' parameter of MAPTreeAttack must be a str among {'black-box', 'white-box'}. "
        "Got 'grey-box' instead."
    )
    with pytest.raises(ConfigError, match="fit"):
        MAPTreeAttack().infer(tree, data)
    narrow = ID3Classifier().fit(data.X[:, :5], data.y_class)
    with pytest.raises(DataError, match="features"):
        MAPTreeAttack().fit(narrow, data)
