"""MAPLinearAttack (Fredrikson et al. 2014): beats the baseline, uses only what it may."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LinearRegression

from invbench.errors import ConfigError, DataError
from invbench.tabular.data import synthetic_warfarin
from invbench.tabular.map_linear import MAPLinearAttack
from invbench.tabular.metrics import attack_scores, majority_baseline


@pytest.fixture(scope="module")
def setup():
    data = synthetic_warfarin(n=1600, seed=7)
    train, test = data.train_test_split(seed=1)
    model = LinearRegression().fit(train.X, train.y)
    return train, test, model


def test_map_beats_the_majority_baseline_clearly(setup):
    train, test, model = setup
    attack = MAPLinearAttack().fit(model, train)
    base = majority_baseline(train.s, test.s)
    for part in (train, test):
        scores = attack_scores(part.s, attack.infer(model, part))
        assert scores["acc"] > base + 0.2
        assert scores["f1"] > 0.5
    # the error model is the model's residual RMSE on the attacker's data
    rmse = np.sqrt(np.mean((train.y - model.predict(train.X)) ** 2))
    assert np.isclose(attack.sigma_, rmse)
    np.testing.assert_allclose(attack.prior_, np.bincount(train.s, minlength=3) / train.n)


def test_attack_ignores_the_true_sensitive_value(setup):
    _, test, model = setup
    attack = MAPLinearAttack().fit(model, test)
    scrambled_X = test.with_sensitive(test.X, 0)  # every record's genotype overwritten
    other = type(test)(**{**test.__dict__, "X": scrambled_X, "s": np.zeros_like(test.s)})
    np.testing.assert_array_equal(attack.infer(model, test), attack.infer(model, other))


def test_prior_dominates_an_uninformative_model(setup):
    train, test, _ = setup

    class Constant:
        def predict(self, X):
            return np.full(len(X), 30.0)

    model = Constant()
    guesses = MAPLinearAttack().fit(model, train).infer(model, test)
    assert np.all(guesses == np.bincount(train.s).argmax())
    uniform = MAPLinearAttack(prior="uniform").fit(model, train)
    np.testing.assert_allclose(uniform.prior_, np.full(3, 1 / 3))
    post = uniform.log_posterior(model, test)
    assert post.shape == (test.n, 3) and np.allclose(post, post[:, :1])


def test_fixed_sigma_and_errors(setup):
    train, test, model = setup
    a = MAPLinearAttack(sigma=2.5).fit(model, train)
    assert a.sigma_ == 2.5
    with pytest.raises(ConfigError, match="before infer"):
        MAPLinearAttack().infer(model, test)
    with pytest.raises(ConfigError, match="'prior' parameter"):
        MAPLinearAttack(prior="empirical").fit(model, train)
    with pytest.raises(ConfigError, match="'sigma' parameter"):
        MAPLinearAttack(sigma=0.0).fit(model, train)
    with pytest.raises(ConfigError, match="predict"):
        MAPLinearAttack().fit(object(), train)
    cyp = synthetic_warfarin(n=300, seed=0, sensitive="cyp2c9")
    with pytest.raises(DataError, match="sensitive values"):
        a.infer(LinearRegression().fit(cyp.X, cyp.y), cyp)
    assert clone(MAPLinearAttack(prior="uniform")).get_params() == {"prior": "uniform",
                                                                    "sigma": None}
