r"""Fredrikson et al.'s MAP attack on a regression model (``map-linear``).

Paper: M. Fredrikson, E. Lantz, S. Jha, S. Lin, D. Page, T. Ristenpart, "Privacy in
Pharmacogenetics: An End-to-End Case Study of Personalized Warfarin Dosing", USENIX Security
2014, https://www.usenix.org/conference/usenixsecurity14/technical-sessions/presentation/fredrikson_matthew

Threat model: black-box. The attacker can query the model ``f``, knows a target record's
non-sensitive attributes ``x₋ₛ`` and its output ``y`` (e.g. the stable warfarin dose), the
marginal distribution ``p(v)`` of the sensitive attribute in the population, and the model's
error statistics (σ̂, the standard deviation of its residuals). It guesses

    x̂ₛ = argmaxᵥ  log p(v) − (y − f(x₋ₛ, v))² / (2σ̂²),

the maximum a posteriori value under a Gaussian error model y = f(x) + N(0, σ̂²).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from invbench.errors import ConfigError, DataError
from invbench.tabular._validation import check_param
from invbench.tabular.data import TabularData

__all__ = ["MAPLinearAttack"]


class MAPLinearAttack(BaseEstimator):
    """Black-box MAP inference of a sensitive attribute from a regression model's output.

    Paper: Fredrikson et al., USENIX Security 2014 (see the module docstring). Works against
    any object with ``predict(X) -> (n,)`` (scikit-learn regressors, the MID and DP linear
    models of this package).

    Arguments:
        prior: ``"marginal"`` (default; p(v) = frequency of each value in the attacker's
            data, the paper's setting) or ``"uniform"``.
        sigma: fixed σ̂ > 0 of the error model; ``None`` (default) estimates it in ``fit`` as
            the root mean squared residual of the model on the attacker's data.

    Attributes (after ``fit``):
        prior_: ``(k,)`` probabilities of the k sensitive values. sigma_: σ̂ used.

    Shape:
        ``infer`` returns ``(n,)`` int64 codes in ``[0, k)``; ``log_posterior`` ``(n, k)``.

    Example:
        >>> from invbench.tabular.data import synthetic_warfarin
        >>> from invbench.tabular.mid_linear import MIDLinearRegression
        >>> data = synthetic_warfarin(n=800, seed=0)
        >>> model = MIDLinearRegression(lam=0.0).fit(data.X, data.y)
        >>> guesses = MAPLinearAttack().fit(model, data).infer(model, data)
    """

    def __init__(self, *, prior: str = "marginal", sigma: float | None = None) -> None:
        self.prior = prior
        self.sigma = sigma

    def fit(self, model: Any, data: TabularData) -> MAPLinearAttack:
        """Learn the prior p(v) and the model's error σ̂ from the attacker's ``data``."""
        prior = check_param(self, "prior", self.prior, kind="str",
                            options=("marginal", "uniform"))
        sigma = check_param(self, "sigma", self.sigma, kind="float", low=0.0,
                            low_inclusive=False, allow_none=True)
        if not hasattr(model, "predict"):
            raise ConfigError(f"MAPLinearAttack needs a model with predict(); got {model!r}")
        k = len(data.sensitive_values())
        if prior == "uniform":
            p = np.full(k, 1.0 / k)
        else:
            p = np.bincount(data.s, minlength=k).astype(np.float64)
            if p.sum() <= 0:
                raise DataError("MAPLinearAttack.fit needs at least one record")
            p /= p.sum()
        if sigma is None:
            resid = data.y - np.asarray(model.predict(data.X), dtype=np.float64)
            sigma = float(np.sqrt(np.mean(resid**2)))
            # a perfect fit would make the likelihood a spike; keep it a finite Gaussian
            sigma = max(sigma, 1e-9 * max(float(np.std(data.y)), 1.0))
        self.prior_ = p
        self.sigma_ = sigma
        self.n_values_ = k
        return self

    def log_posterior(self, model: Any, data: TabularData) -> np.ndarray:
        """``(n, k)`` unnormalised log-posterior of each sensitive value for each record.

        Uses only the non-sensitive columns of ``data.X`` (the sensitive one-hot is
        overwritten with each candidate value) and the observed output ``data.y``.
        """
        if not hasattr(self, "prior_"):
            raise ConfigError("MAPLinearAttack: call fit(model, data) before infer()")
        k = len(data.sensitive_values())
        if k != self.n_values_:
            raise DataError(
                f"MAPLinearAttack was fitted for {self.n_values_} sensitive values; the data "
                f"has {k}"
            )
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.prior_)
        out = np.empty((data.n, k), dtype=np.float64)
        for v in range(k):
            pred = np.asarray(model.predict(data.with_sensitive(data.X, v)), dtype=np.float64)
            out[:, v] = log_prior[v] - (data.y - pred) ** 2 / (2.0 * self.sigma_**2)
        return out

    def infer(self, model: Any, data: TabularData) -> np.ndarray:
        """``(n,)`` int64 MAP guesses of the sensitive code of every record of ``data``."""
        return np.argmax(self.log_posterior(model, data), axis=1).astype(np.int64)
