"""Functional mechanism and DP-SGD linear regression: correctness, privacy knobs, conformance."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from invbench.errors import ConfigError, MissingExtraError
from invbench.tabular.data import synthetic_warfarin
from invbench.tabular.dp_linear import DPSGDLinearRegression, FunctionalMechanismLinearRegression
from invbench.tabular.metrics import mse


@pytest.fixture(scope="module")
def split():
    return synthetic_warfarin(n=2000, seed=4).train_test_split(seed=0)


def test_functional_mechanism_without_noise_is_least_squares(split):
    train, test = split
    # ε -> ∞ (noise and the noise-relative ridge vanish) and no target clipping: exact OLS,
    # which checks the normalisation to ‖x‖ <= 1 and the mapping back to original units
    fm = FunctionalMechanismLinearRegression(epsilon=1e13, y_clip=None, random_state=0)
    fm.fit(train.X, train.y)
    ols = LinearRegression().fit(train.X, train.y)
    np.testing.assert_allclose(fm.predict(test.X), ols.predict(test.X), rtol=1e-5, atol=1e-4)
    d = train.X.shape[1]
    assert fm.sensitivity_ == 2.0 * (d + 2) ** 2  # Δ = 2(D+1)², D = d + intercept


def test_functional_mechanism_utility_improves_with_epsilon(split):
    train, test = split
    means = []
    for eps in (0.5, 50.0, 5000.0):
        errs = [
            mse(test.y, FunctionalMechanismLinearRegression(epsilon=eps, random_state=s)
                .fit(train.X, train.y).predict(test.X))
            for s in range(5)
        ]
        means.append(float(np.mean(errs)))
    assert means[0] > means[1] > means[2]
    ols = mse(test.y, LinearRegression().fit(train.X, train.y).predict(test.X))
    assert means[2] < 1.5 * ols
    # even at tiny ε the regularised solution stays bounded (no exploding weights)
    assert means[0] < 3.0 * np.var(test.y)


def test_functional_mechanism_is_seeded(split):
    train, _ = split
    a = FunctionalMechanismLinearRegression(epsilon=1.0, random_state=3).fit(train.X, train.y)
    b = FunctionalMechanismLinearRegression(epsilon=1.0, random_state=3).fit(train.X, train.y)
    c = FunctionalMechanismLinearRegression(epsilon=1.0, random_state=4).fit(train.X, train.y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.allclose(a.coef_, c.coef_)


def test_dpsgd_runs_and_reports_epsilon(split):
    train, test = split
    m = DPSGDLinearRegression(epsilon=2.0, delta=1e-5, epochs=3, random_state=0)
    m.fit(train.X, train.y)
    assert 0.5 < m.epsilon_ <= 2.0 + 1e-6
    assert m.noise_multiplier_ > 0
    assert m.coef_.shape == (train.X.shape[1],)
    # a useful model: clearly better than predicting the mean
    assert mse(test.y, m.predict(test.X)) < 0.8 * np.var(test.y)
    again = DPSGDLinearRegression(epsilon=2.0, delta=1e-5, epochs=3, random_state=0)
    np.testing.assert_allclose(again.fit(train.X, train.y).coef_, m.coef_)


def test_dpsgd_missing_opacus_is_one_line(monkeypatch, split):
    train, _ = split
    monkeypatch.setitem(sys.modules, "opacus", None)  # makes `import opacus` fail
    with pytest.raises(MissingExtraError, match=r"invbench\[dp\]"):
        DPSGDLinearRegression(epsilon=1.0).fit(train.X, train.y)


@pytest.mark.parametrize(
    ("est", "match"),
    [
        (FunctionalMechanismLinearRegression(epsilon=0), "'epsilon' parameter .* > 0"),
        (FunctionalMechanismLinearRegression(epsilon=-1.0), "'epsilon' parameter"),
        (FunctionalMechanismLinearRegression(ridge=-0.1), "'ridge' parameter"),
        (DPSGDLinearRegression(epsilon=0.0), "'epsilon' parameter"),
        (DPSGDLinearRegression(delta=0.0), r"'delta' parameter .* \(0, 1\)"),
        (DPSGDLinearRegression(epochs=0), "'epochs' parameter .* >= 1"),
        (DPSGDLinearRegression(batch_size=2.5), "'batch_size' parameter .* an int"),
    ],
)
def test_bad_parameters(est, match, split):
    train, _ = split
    with pytest.raises(ConfigError, match=match):
        est.fit(train.X, train.y)


def test_sklearn_conformance(split):
    check_estimator(FunctionalMechanismLinearRegression(epsilon=1e7, random_state=0),
                    on_skip=None)
    check_estimator(DPSGDLinearRegression(epsilon=1e4, epochs=20, random_state=0),
                    on_skip=None)
    m = clone(DPSGDLinearRegression(epsilon=3.0, epochs=2))
    assert m.get_params()["epsilon"] == 3.0 and m.get_params()["epochs"] == 2
    train, _ = split
    pipe = make_pipeline(StandardScaler(),
                         FunctionalMechanismLinearRegression(epsilon=100.0, random_state=0))
    assert pipe.fit(train.X, train.y).predict(train.X).shape == (train.n,)
