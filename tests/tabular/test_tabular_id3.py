"""Tests for the ID3 core (invbench.tabular.id3)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from invbench.errors import ConfigError, DataError
from invbench.tabular.dp_tree import DPID3Classifier
from invbench.tabular.id3 import (
    ID3Classifier,
    NodeStats,
    QuantileBinner,
    SplitPolicy,
    build_tree,
    entropy_bits,
)
from invbench.tabular.mid_tree import MIDDecisionTreeClassifier


def test_entropy_bits() -> None:
    assert entropy_bits(np.array([1.0, 1.0])) == pytest.approx(1.0)
    assert entropy_bits(np.array([6.0, 2.0])) == pytest.approx(0.8112781244591328)
    rows = entropy_bits(np.array([[4.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(rows, [0.0, 0.0, 1.0])
    assert str(float(entropy_bits(np.array([3.0, 0.0])))) == "0.0"  # no negative zero


def test_binner_binary_unique_and_quantile_columns() -> None:
    X = np.column_stack([
        [0, 1, 0, 1, 1, 0, 0, 1, 0, 1],  # binary -> edge 0.5
        [1, 2, 3, 1, 2, 3, 1, 2, 3, 1],  # 3 distinct values <= n_bins -> midpoints
        np.arange(10.0),                 # 10 distinct -> quartile edges
        np.full(10, 7.0),                # constant -> a single value
    ]).astype(float)
    b = QuantileBinner(n_bins=4).fit(X)
    np.testing.assert_allclose(b.edges_[0], [0.5])
    np.testing.assert_allclose(b.edges_[1], [1.5, 2.5])
    np.testing.assert_allclose(b.edges_[2], np.quantile(np.arange(10.0), [0.25, 0.5, 0.75]))
    assert b.edges_[3].size == 0
    assert b.n_values_.tolist() == [2, 3, 4, 1]
    assert b.offsets_.tolist() == [0, 2, 5, 9, 10]
    codes = b.transform(np.array([[1.0, 0.0, -5.0, 7.0], [0.0, 9.0, 100.0, 3.0]]))
    assert codes.tolist() == [[1, 0, 0, 0], [0, 2, 3, 0]]  # unseen values: outer bins


def _and_data() -> tuple[np.ndarray, np.ndarray]:
    # columns A, B (binary); y = A and B; every combination twice
    A = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=float)
    B = np.array([0, 0, 1, 1, 0, 0, 1, 1], dtype=float)
    return np.column_stack([A, B]), (A * B).astype(int)


def test_hand_made_dataset_gives_the_expected_tree() -> None:
    X, y = _and_data()
    # Root: H(Y) = H(6/8, 2/8) = 0.8113 bits. Splitting on A: A=0 -> 4 zeros (H 0), A=1 -> 2/2
    # (H 1): gain 0.8113 - 0.5 = 0.3113; B gives the same, the tie goes to column 0 (A).
    # Node ids in depth-first order: 0 root, 1 = (A=0) leaf [4, 0], 2 = (A=1) split on B,
    # 3 = (A=1, B=0) leaf [2, 0], 4 = (A=1, B=1) leaf [0, 2].
    tree = ID3Classifier(max_depth=5).fit(X, y)
    t = tree.tree_
    assert t.feature.tolist() == [0, -1, 1, -1, -1]
    assert t.first_child.tolist() == [1, -1, 3, -1, -1]
    np.testing.assert_allclose(tree.leaf_counts_, [[6, 2], [4, 0], [2, 2], [2, 0], [0, 2]])
    assert t.depth.tolist() == [0, 1, 1, 2, 2]
    assert tree.apply(X).tolist() == [1, 1, 1, 1, 3, 3, 4, 4]
    assert tree.predict(X).tolist() == y.tolist()
    np.testing.assert_allclose(tree.predict_proba(np.array([[1.0, 1.0]])), [[0.0, 1.0]])
    assert tree.n_leaves_ == 3
    # max_depth=1 stops after the root split: leaves [4, 0] and [2, 2] (tie -> class 0)
    stump = ID3Classifier(max_depth=1).fit(X, y)
    assert stump.tree_.feature.tolist() == [0, -1, -1]
    assert stump.predict(X).tolist() == [0] * 8


def test_zero_gain_split_is_not_taken() -> None:
    # y = A xor B: each column alone has zero information gain, so greedy ID3 stops at the root
    X, _ = _and_data()
    y = (X[:, 0] != X[:, 1]).astype(int)
    tree = ID3Classifier(max_depth=5).fit(X, y)
    assert tree.tree_.n_nodes == 1
    np.testing.assert_allclose(tree.leaf_counts_, [[4, 4]])


def test_numeric_column_multiway_split_and_min_samples_leaf() -> None:
    x = np.arange(1.0, 13.0)  # 12 distinct values, 3 quantile bins of 4
    y = np.array([0] * 4 + [1] * 4 + [2] * 4)
    tree = ID3Classifier(max_depth=2, n_bins=3).fit(x[:, None], y)
    assert tree.tree_.feature.tolist() == [0, -1, -1, -1]  # one 3-way split
    assert tree.predict(np.array([[0.0], [6.5], [50.0]])).tolist() == [0, 1, 2]
    # every child would get 4 records: min_samples_leaf=5 forbids the split
    assert ID3Classifier(max_depth=2, n_bins=3, min_samples_leaf=5).fit(
        x[:, None], y
    ).tree_.n_nodes == 1


class _ForcedSplits(SplitPolicy):
    """Splits on column 0 at the root and on column 1 below, whatever the data say."""

    def choose(self, node: NodeStats) -> int | None:
        if node.depth == 0:
            return 0
        return 1 if node.available[1] and node.n_records > 0 else None


def test_pluggable_policy_and_empty_children_predict_like_their_parent() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 2], [1, 2], [1, 2]], dtype=np.int64)
    y = np.array([0, 1, 1, 1, 0], dtype=np.int64)
    t = build_tree(codes, y, n_values=np.array([2, 3]), n_classes=2, max_depth=3,
                   policy=_ForcedSplits())
    # root -> children 1 (col0=0), 2 (col0=1); node 1 -> 3, 4, 5; node 2 -> 6, 7, 8
    assert t.feature.tolist() == [0, 1, 1, -1, -1, -1, -1, -1, -1]
    np.testing.assert_allclose(t.counts[[3, 4, 5, 6, 7, 8]],
                               [[1, 0], [0, 1], [0, 0], [0, 0], [0, 0], [1, 2]])
    np.testing.assert_allclose(t.counts[0], [2, 3])  # internal = sum of its leaves
    # node 5 (col0=0, col1=2) and nodes 6, 7 got no records: they predict like their parent
    np.testing.assert_allclose(t.value[5], t.value[1])
    np.testing.assert_allclose(t.value[6], [1 / 3, 2 / 3])
    assert t.apply(np.array([[1, 0], [0, 2]])).tolist() == [6, 5]


def test_fast_enough_for_5k_rows_30_features_depth_8() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    Xb = (rng.random((n, 20)) < 0.3).astype(float)
    Xn = rng.normal(size=(n, 10))
    X = np.hstack([Xb, Xn])
    y = (Xn[:, 0] + Xb[:, 0] + rng.normal(size=n) > 0).astype(int) + (Xn[:, 1] > 1)
    start = time.perf_counter()
    tree = ID3Classifier(max_depth=8, n_bins=8).fit(X, y)
    elapsed = time.perf_counter() - start
    assert tree.tree_.depth.max() >= 5  # records run out before depth 8 on some paths
    assert (tree.predict(X) == y).mean() > 0.9
    assert elapsed < 2.0  # ~0.25 s measured; generous for a shared CI machine


def test_sklearn_conformance() -> None:
    X, y = _and_data()
    est = ID3Classifier(max_depth=3, n_bins=5, min_samples_leaf=1)
    assert est.get_params() == {"max_depth": 3, "n_bins": 5, "min_samples_leaf": 1}
    twin = clone(est).set_params(max_depth=1)
    assert twin.max_depth == 1 and est.max_depth == 3
    assert not hasattr(twin, "tree_")
    pipe = make_pipeline(StandardScaler(), ID3Classifier(max_depth=3)).fit(X, y)
    assert pipe.predict(X).tolist() == y.tolist()
    labels = np.array(["no", "yes"])[y]
    assert ID3Classifier().fit(X, labels).predict(X).tolist() == labels.tolist()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_depth": 0},
         "The 'max_depth' parameter of ID3Classifier must be an int >= 1. Got 0 instead."),
        ({"n_bins": 1},
         "The 'n_bins' parameter of ID3Classifier must be an int >= 2. Got 1 instead."),
        ({"min_samples_leaf": 0},
         "The 'min_samples_leaf' parameter of ID3Classifier must be an int >= 1. Got 0 instead."),
        ({"max_depth": 2.5},
         "The 'max_depth' parameter of ID3Classifier must be an int >= 1. Got 2.5 instead."),
    ],
)
def test_bad_params(params: dict, message: str) -> None:
    X, y = _and_data()
    with pytest.raises(ConfigError) as info:
        ID3Classifier(**params).fit(X, y)
    assert str(info.value) == message


def test_bad_data() -> None:
    X, y = _and_data()
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        ID3Classifier().fit(bad, y)
    tree = ID3Classifier().fit(X, y)
    with pytest.raises(DataError, match="features"):
        tree.predict(np.zeros((2, 3)))
    with pytest.raises(DataError, match="continuous"):
        ID3Classifier().fit(X, np.linspace(0, 1, 8))


@pytest.mark.parametrize(
    "make",
    [
        lambda: ID3Classifier(),
        lambda: MIDDecisionTreeClassifier(lam=0.1),
        lambda: DPID3Classifier(epsilon=5.0, random_state=0),
    ],
    ids=["id3", "mid", "dp-id3"],
)
def test_sklearn_check_estimator(make) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(make(), on_fail=None)
    failed = [r["check_name"] for r in results if r["status"] == "failed"]
    assert failed == []
