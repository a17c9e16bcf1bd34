"""MIDLinearRegression: OLS at λ = 0, the closed form, and that it lowers what it claims to."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from invbench.errors import ConfigError, DataError
from invbench.tabular.data import synthetic_warfarin
from invbench.tabular.map_linear import MAPLinearAttack
from invbench.tabular.metrics import attack_scores
from invbench.tabular.mid_linear import MIDLinearRegression


@pytest.fixture(scope="module")
def split():
    return synthetic_warfarin(n=1500, seed=0).train_test_split(seed=0)


def test_lam_zero_is_ordinary_least_squares(split):
    train, test = split
    mid = MIDLinearRegression(lam=0.0).fit(train.X, train.y)
    ols = LinearRegression().fit(train.X, train.y)
    np.testing.assert_allclose(mid.predict(test.X), ols.predict(test.X), rtol=1e-8, atol=1e-8)
    assert mid.shrinkage_ == 1.0
    # full-rank data: the coefficients themselves agree
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = X @ np.arange(1.0, 6.0) + 3.0 + rng.normal(size=200)
    m = MIDLinearRegression(lam=0.0).fit(X, y)
    o = LinearRegression().fit(X, y)
    np.testing.assert_allclose(m.coef_, o.coef_, rtol=1e-10)
    assert math.isclose(m.intercept_, o.intercept_, rel_tol=1e-10)


def test_taylor_closed_form_is_uniform_shrinkage(split):
    train, _ = split
    ols = MIDLinearRegression(lam=0.0).fit(train.X, train.y)
    resid = train.y - ols.predict(train.X)
    s2, V = float(np.mean(resid**2)), float(np.var(train.y))
    lam = 0.7
    mid = MIDLinearRegression(lam=lam).fit(train.X, train.y)
    t = 2 * s2 / (2 * s2 + lam * V)
    assert math.isclose(mid.shrinkage_, t, rel_tol=1e-9)
    assert math.isclose(mid.sigma2_, s2, rel_tol=1e-9)
    np.testing.assert_allclose(mid.coef_, t * ols.coef_, rtol=1e-9, atol=1e-12)
    # the mean prediction is kept (b absorbs it; the penalty ignores b)
    assert math.isclose(mid.predict(train.X).mean(), train.y.mean(), rel_tol=1e-9)

    # the closed form minimises the stated objective along any direction
    Xc = train.X - train.X.mean(axis=0)
    cov = Xc.T @ Xc / train.n

    def objective(w):
        b = train.y.mean() - train.X.mean(axis=0) @ w
        mse = np.mean((train.y - train.X @ w - b) ** 2)
        return mse / V + lam * (w @ cov @ w) / (2 * s2)

    best = objective(mid.coef_)
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert objective(mid.coef_ + 0.01 * rng.normal(size=mid.coef_.shape)) >= best - 1e-12


def test_gaussian_approximation_minimises_its_objective(split):
    train, _ = split
    mid = MIDLinearRegression(lam=2.0, approximation="gaussian").fit(train.X, train.y)
    ols = MIDLinearRegression(lam=0.0).fit(train.X, train.y)
    fitted = (train.X - train.X.mean(0)) @ ols.coef_
    a = float(np.mean(fitted**2))
    r = float(np.mean((train.y - ols.predict(train.X)) ** 2))
    V = float(np.var(train.y))

    def J(t):
        return ((1 - t) ** 2 * a + r) / V + 0.5 * 2.0 * math.log1p(t * t * a / mid.sigma2_)

    grid = np.linspace(0, 1, 2001)
    assert J(mid.shrinkage_) <= min(J(t) for t in grid) + 1e-9
    # information_: ½ log(1 + wᵀΣw/σ²), the exact I(X; Ŷ) for Gaussian wᵀX
    v = float(np.var((train.X - train.X.mean(0)) @ mid.coef_))
    assert math.isclose(mid.information_, 0.5 * math.log1p(v / mid.sigma2_), rel_tol=1e-9)
    # the Taylor term upper-bounds it at the same weights
    assert v / (2 * mid.sigma2_) >= mid.information_


def test_larger_lam_shrinks_leakage_and_lowers_the_map_attack(split):
    train, test = split
    Xc = train.X - train.X.mean(axis=0)
    cov = Xc.T @ Xc / train.n
    quad, info, acc = [], [], []
    for lam in (0.0, 1.0, 3.0, 10.0, 30.0):
        m = MIDLinearRegression(lam=lam).fit(train.X, train.y)
        quad.append(float(m.coef_ @ cov @ m.coef_))
        info.append(m.information_)
        attack = MAPLinearAttack().fit(m, train)
        acc.append(attack_scores(test.s, attack.infer(m, test))["acc"])
    assert all(a > b for a, b in zip(quad, quad[1:], strict=False))
    assert all(a > b for a, b in zip(info, info[1:], strict=False))
    # the defense lowers what it claims to: the attack falls towards the majority baseline
    base = np.bincount(train.s).max() / train.n
    assert acc[0] > base + 0.2
    assert acc[-1] < acc[0] - 0.2
    assert acc[-1] < base + 0.1


def test_fixed_sigma2_and_bad_parameters():
    d = synthetic_warfarin(n=300, seed=1)
    m = MIDLinearRegression(lam=1.0, sigma2=1e6).fit(d.X, d.y)
    assert m.sigma2_ == 1e6 and m.shrinkage_ > 0.99  # huge noise: almost nothing to remove
    with pytest.raises(ConfigError) as info:
        MIDLinearRegression(lam=-1).fit(d.X, d.y)
    assert str(info.value) == (
        "The 'lam' parameter of MIDLinearRegression must be a float >= 0. Got -1 instead."
    )
    with pytest.raises(ConfigError, match="'approximation' parameter .* among"):
        MIDLinearRegression(approximation="exact").fit(d.X, d.y)
    with pytest.raises(ConfigError, match="'sigma2' parameter"):
        MIDLinearRegression(sigma2=0.0).fit(d.X, d.y)
    with pytest.raises(DataError, match="NaN"):
        MIDLinearRegression().fit(np.full((5, 2), np.nan), np.zeros(5))
    with pytest.raises(DataError, match="features"):
        MIDLinearRegression().fit(d.X, d.y).predict(d.X[:, :3])


def test_sklearn_conformance():
    check_estimator(MIDLinearRegression(lam=0.0), on_skip=None)
    check_estimator(
        MIDLinearRegression(lam=1.0),
        on_skip=None,
        expected_failed_checks={
            "check_regressors_train": "a defense trades fit for privacy: R^2 drops below 0.5"
        },
    )
    m = MIDLinearRegression(lam=0.5, approximation="gaussian")
    c = clone(m)
    assert c.get_params() == {"lam": 0.5, "sigma2": None, "approximation": "gaussian"}
    c.set_params(lam=2.0)
    assert c.lam == 2.0 and m.lam == 0.5
    d = synthetic_warfarin(n=300, seed=2)
    pipe = make_pipeline(StandardScaler(), MIDLinearRegression(lam=0.0)).fit(d.X, d.y)
    ols = LinearRegression().fit(d.X, d.y)
    np.testing.assert_allclose(pipe.predict(d.X), ols.predict(d.X), rtol=1e-7, atol=1e-7)
