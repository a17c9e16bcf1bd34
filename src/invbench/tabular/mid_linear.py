r"""MID for linear regression: least squares plus λ times a Taylor approximation of I(X; Ŷ).

Paper: T. Wang, Y. Zhang, R. Jia, "Improving Robustness to Model Inversion Attacks via Mutual
Information Regularization", AAAI 2021 (https://arxiv.org/abs/2009.05241). The paper's own
formula for the linear case was not available to us; the derivation below is ours and is
written out in full in ``docs/tabular.md``.

Derivation (summary)
--------------------
Model the released output as Ŷ = wᵀX + b + ε with ε ~ N(0, σ²) independent of X (a
deterministic regressor has infinite I(X; Ŷ); the noise is the output's error, the same
Gaussian error model Fredrikson et al.'s attacker assumes). Let U = wᵀX, v = Var(U) = wᵀΣw
with Σ = Cov(X), and snr = v / σ². Then

    I(X; Ŷ) = I(U; U + ε) = H(U + ε) − H(ε) = H(U + ε) − ½ log(2πeσ²).

Expanding the density of U + ε around the noise density N(0, σ²) to second order in the
centred signal (equivalently, the I-MMSE relation dI/dsnr = ½ mmse(snr) with
mmse(snr) = 1 − snr + O(snr²) for any input with finite moments) gives

    I(X; Ŷ) = snr/2 − snr²/4 + O(snr³),

whose first two terms agree with ½ log(1 + snr), the value for Gaussian U, which is also an
upper bound for every U of variance v (the Gaussian maximises H(U + ε)). Two surrogates:

- ``approximation="taylor"`` (default): the leading term Î = wᵀΣw / (2σ²), an upper bound of
  ½ log(1 + snr) and so of I for any input distribution;
- ``approximation="gaussian"``: Î = ½ log(1 + wᵀΣw / σ²), tight for Gaussian features.

The objective, with the squared error in units of Var(y) so that λ is dimensionless (λ = 1:
one nat of leakage costs as much as the whole variance of the target), is

    min_{w,b}  (1/n)‖y − Xw − b‖² / Var(y) + λ Î(w).

Closed form. Centre X and y (b absorbs the means; Î does not depend on b). With the
empirical Σ = X_cᵀX_c/n, the squared error equals (w − w*)ᵀΣ(w − w*) + r, where w* is the
least-squares solution and r its residual variance. In the whitened coordinates u = Σ^{1/2}w
the objective is ‖u − u*‖² / Var(y) + λ g(‖u‖²) with g increasing, so the minimiser lies on
the segment from 0 to u*: w = t w*, t ∈ [0, 1]. MID for a linear model is therefore a
*uniform shrinkage of the least-squares fit towards the mean prediction*. With
a = w*ᵀΣw* (the explained variance) and V = Var(y):

- Taylor:   J(t) = ((1−t)² a + r)/V + λ t² a/(2σ²)   ⇒   t = 2σ² / (2σ² + λV);
- Gaussian: J'(t) = 0  ⇔  2a t³ − 2a t² + (2σ² + λV) t − 2σ² = 0, a cubic with one root in
  (0, 1] that minimises J (checked against the end points).

σ² is a fixed hyperparameter (``sigma2``) or, by default, the least-squares residual
variance r on the training data (the error Fredrikson et al.'s attacker reads off the model);
it is computed once, before the shrinkage, so the problem stays closed form. λ = 0 is
ordinary least squares (the minimum-norm solution when X is rank deficient, e.g. full
one-hot encodings).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from invbench.tabular._validation import check_param, check_X, check_Xy

__all__ = ["MIDLinearRegression", "least_squares"]


def least_squares(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-norm least squares with an intercept: ``(coef (d,), intercept)``."""
    x_mean = X.mean(axis=0)
    y_mean = float(y.mean())
    coef, *_ = np.linalg.lstsq(X - x_mean, y - y_mean, rcond=None)
    return coef, y_mean - float(x_mean @ coef)


class MIDLinearRegression(RegressorMixin, BaseEstimator):
    r"""Linear regression regularised by λ·I(X; Ŷ) (the MID defense, linear instance).

    Paper: Wang, Zhang & Jia, AAAI 2021, https://arxiv.org/abs/2009.05241 (MID); the
    Taylor-expansion approximation of I(X; Ŷ) and its closed-form solution are derived in the
    module docstring and ``docs/tabular.md``. The fitted model is the least-squares fit
    shrunk towards the mean prediction by the factor ``shrinkage_`` = t(λ) ∈ (0, 1].

    Threat model defended against: an attacker who sees the model (or queries it) and knows a
    record's other attributes and its target, and infers a sensitive attribute (Fredrikson et
    al.'s MAP attack, :class:`~invbench.tabular.map_linear.MAPLinearAttack`).

    Arguments:
        lam: λ >= 0, weight of the information term (dimensionless; the squared error is in
            units of Var(y)). 0 gives ordinary least squares. Default 1.0.
        sigma2: σ² > 0 of the output-noise model, in squared target units; ``None`` (default)
            uses the least-squares residual variance on the training data.
        approximation: ``"taylor"`` (Î = wᵀΣw/(2σ²), default) or ``"gaussian"``
            (Î = ½ log(1 + wᵀΣw/σ²)).

    Attributes:
        coef_: ``(d,)`` weights. intercept_: float. shrinkage_: t ∈ [0, 1].
        sigma2_: σ² used. information_: Î at the solution (nats). n_features_in_: d.

    Shape:
        X: ``(n, d)`` finite floats; y: ``(n,)`` finite floats. ``predict`` returns ``(n,)``.

    Example:
        >>> from invbench.tabular.data import synthetic_warfarin
        >>> data = synthetic_warfarin(n=500, seed=0)
        >>> model = MIDLinearRegression(lam=1.0).fit(data.X, data.y)
        >>> 0.0 < model.shrinkage_ < 1.0
        True
    """

    def __init__(
        self, lam: float = 1.0, *, sigma2: float | None = None, approximation: str = "taylor"
    ) -> None:
        self.lam = lam
        self.sigma2 = sigma2
        self.approximation = approximation

    def _validate(self) -> tuple[float, float | None, str]:
        lam = check_param(self, "lam", self.lam, kind="float", low=0.0)
        sigma2 = check_param(
            self, "sigma2", self.sigma2, kind="float", low=0.0, low_inclusive=False,
            allow_none=True,
        )
        approx = check_param(
            self, "approximation", self.approximation, kind="str",
            options=("taylor", "gaussian"),
        )
        return lam, sigma2, approx

    def fit(self, X: Any, y: Any) -> MIDLinearRegression:
        """Fit in closed form; returns ``self``."""
        lam, sigma2, approx = self._validate()
        X, y = check_Xy(self, X, y)
        n = X.shape[0]
        w_ls, _ = least_squares(X, y)
        x_mean, y_mean = X.mean(axis=0), float(y.mean())
        fitted = (X - x_mean) @ w_ls
        a = float(fitted @ fitted) / n  # explained variance w*ᵀΣw*
        resid = (y - y_mean) - fitted
        r = float(resid @ resid) / n
        var_y = float(np.var(y))
        scale = var_y if var_y > 0 else 1.0
        s2 = sigma2 if sigma2 is not None else max(r, 1e-12 * scale)
        t = self._shrinkage(lam=lam, a=a, r=r, s2=s2, V=scale, approx=approx)
        self.coef_ = t * w_ls
        self.intercept_ = y_mean - float(x_mean @ self.coef_)
        self.shrinkage_ = t
        self.sigma2_ = s2
        v = t * t * a
        self.information_ = (
            v / (2.0 * s2) if approx == "taylor" else 0.5 * math.log1p(v / s2)
        )
        return self

    @staticmethod
    def _shrinkage(*, lam: float, a: float, r: float, s2: float, V: float, approx: str) -> float:
        if lam == 0.0 or a <= 0.0:
            return 1.0
        if approx == "taylor":
            return 2.0 * s2 / (2.0 * s2 + lam * V)

        def objective(t: float) -> float:
            return ((1.0 - t) ** 2 * a + r) / V + 0.5 * lam * math.log1p(t * t * a / s2)

        roots = np.roots([2.0 * a, -2.0 * a, 2.0 * s2 + lam * V, -2.0 * s2])
        cands = [0.0, 1.0] + [
            float(z.real) for z in roots if abs(z.imag) < 1e-9 and 0.0 <= z.real <= 1.0
        ]
        return min(cands, key=objective)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n,)`` for ``X`` ``(n, d)``."""
        check_is_fitted(self, "coef_")
        X = check_X(self, X)
        return X @ self.coef_ + self.intercept_
