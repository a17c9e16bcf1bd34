"""Tests for DPID3Classifier (invbench.tabular.dp_tree)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from invbench.errors import ConfigError
from invbench.tabular.dp_tree import DPID3Classifier


def _easy(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.random((n, 4)) < 0.5).astype(float)
    y = ((X[:, 0] + X[:, 1]) >= 1).astype(int)  # A or B; majority rate 0.75
    return X, y


@pytest.mark.parametrize("split", ["noisy-gain", "exponential-max"])
def test_accuracy_improves_with_epsilon(split: str) -> None:
    X, y = _easy()
    mean_acc = []
    for eps in (0.05, 1.0, 50.0):
        accs = [
            float(np.mean(
                DPID3Classifier(epsilon=eps, max_depth=3, split=split, random_state=s)
                .fit(X, y).predict(X) == y
            ))
            for s in range(6)
        ]
        mean_acc.append(float(np.mean(accs)))
    assert mean_acc[0] < mean_acc[2] - 0.1
    assert mean_acc[0] <= mean_acc[1] + 0.02 <= mean_acc[2] + 0.04
    assert mean_acc[2] > 0.9  # measured 1.00 (noisy-gain), 0.96 (exponential-max)


def test_seeded_noise() -> None:
    X, y = _easy(600)
    a = DPID3Classifier(epsilon=2.0, random_state=1).fit(X, y)
    b = DPID3Classifier(epsilon=2.0, random_state=1).fit(X, y)
    c = DPID3Classifier(epsilon=2.0, random_state=2).fit(X, y)
    np.testing.assert_array_equal(a.leaf_counts_, b.leaf_counts_)
    assert a.leaf_counts_.shape != c.leaf_counts_.shape or not np.allclose(
        a.leaf_counts_, c.leaf_counts_
    )
    assert np.all(a.leaf_counts_ >= 0)
    # the stored counts are noisy, not the training counts
    assert not np.allclose(a.leaf_counts_[0], np.bincount(y, minlength=2))


def test_leaf_counts_carry_laplace_noise_of_the_documented_scale() -> None:
    # One constant column: the root may split on it (one child, depth 1); every leaf is then
    # the whole data set, and its class counts get Lap(1/eps_q) with eps_q = B / (2(d+1)).
    X = np.zeros((400, 1))
    y = np.array([0] * 200 + [1] * 200)
    budget, depth = 2.0, 1
    eps_q = budget / (2 * (depth + 1))
    noise = []
    for seed in range(300):
        tree = DPID3Classifier(epsilon=budget, max_depth=depth, random_state=seed).fit(X, y)
        leaf = int(np.flatnonzero(tree.tree_.is_leaf)[0])
        noise.append(tree.leaf_counts_[leaf] - 200.0)  # no clipping: counts stay near 200
    noise = np.concatenate(noise)
    assert tree.epsilon_per_query == pytest.approx(eps_q)
    # Laplace(b): mean 0, E|Z| = b = 2  (600 draws: se of the mean |Z| ~ 0.08)
    assert abs(float(np.mean(noise))) < 0.35
    assert float(np.mean(np.abs(noise))) == pytest.approx(1 / eps_q, rel=0.15)


def test_few_records_stop_at_the_root() -> None:
    # N_T / (t |C|) < sqrt(2)/eps: 40 records, t = 2, |C| = 2 need eps_q > sqrt(2)*4/40
    X, y = _easy(40)
    tiny = DPID3Classifier(epsilon=0.05, max_depth=3, random_state=0).fit(X, y)
    assert tiny.tree_.n_nodes == 1
    eps_q = 0.05 / 8
    assert 40 / 4 < math.sqrt(2) / eps_q


def test_sklearn_conformance() -> None:
    X, y = _easy(300)
    est = DPID3Classifier(epsilon=3.0, max_depth=2, random_state=0)
    assert set(est.get_params()) == {"epsilon", "max_depth", "n_bins", "split", "random_state"}
    c = clone(est).set_params(epsilon=9.0)
    assert c.epsilon == 9.0 and est.epsilon == 3.0
    pipe = make_pipeline(StandardScaler(), clone(est)).fit(X, y)
    assert pipe.predict(X).shape == (300,)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epsilon": 0},
         "The 'epsilon' parameter of DPID3Classifier must be a float > 0. Got 0 instead."),
        ({"epsilon": -1.5},
         "The 'epsilon' parameter of DPID3Classifier must be a float > 0. Got -1.5 instead."),
        ({"max_depth": 0},
         "The 'max_depth' parameter of DPID3Classifier must be an int >= 1. Got 0 instead."),
        ({"split": "gini"},
         "The 'split' parameter of DPID3Classifier must be a str among "
         "{'exponential-max', 'noisy-gain'}. Got 'gini' instead."),
        ({"random_state": -3},
         "The 'random_state' parameter of DPID3Classifier must be an int >= 0 or None. "
         "Got -3 instead."),
    ],
)
def test_bad_params(params: dict, message: str) -> None:
    X, y = _easy(50)
    with pytest.raises(ConfigError) as info:
        DPID3Classifier(**params).fit(X, y)
    assert str(info.value) == message
