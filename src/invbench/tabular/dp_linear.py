r"""Differentially private linear regression: the functional mechanism and DP-SGD.

The baselines the MID paper compares against on linear models.

- :class:`FunctionalMechanismLinearRegression`: J. Zhang, Z. Zhang, X. Xiao, Y. Yang,
  M. Winslett, "Functional Mechanism: Regression Analysis under Differential Privacy",
  VLDB 2012 (https://arxiv.org/abs/1208.0219) — the mechanism Fredrikson et al. (USENIX
  Security 2014) evaluated against their MAP attack. ε-DP (pure).
- :class:`DPSGDLinearRegression`: the same linear model trained by DP-SGD (Abadi et al.,
  CCS 2016, https://arxiv.org/abs/1607.00133) through ``opacus`` (optional extra ``dp``).
  (ε, δ)-DP.

Threat model: the released model (its weights) is differentially private with respect to
the training records. The per-feature ranges of X and the range (functional mechanism) or
mean and scale (DP-SGD) of y used to normalise the data are taken from the training data and
treated as public, as in Fredrikson et al.; a deployment with stricter needs would fix them
from domain knowledge (they are exposed as fitted attributes so that can be checked).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from invbench.errors import optional_import
from invbench.tabular._validation import check_param, check_X, check_Xy

__all__ = ["FunctionalMechanismLinearRegression", "DPSGDLinearRegression"]


def _minmax(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = v.min(axis=0)
    span = v.max(axis=0) - lo
    return lo, np.where(span > 0, span, 1.0)


class FunctionalMechanismLinearRegression(RegressorMixin, BaseEstimator):
    r"""ε-differentially private least squares by the functional mechanism.

    Paper: Zhang et al., "Functional Mechanism: Regression Analysis under Differential
    Privacy", VLDB 2012, https://arxiv.org/abs/1208.0219.

    Algorithm. Each feature is mapped to [-1, 1] by its range, a constant 1 is appended for
    the intercept, and each row is divided by √D (D = d + 1) so that ‖x‖₂ ≤ 1; y is mapped to
    [-1, 1]. The least-squares objective Σᵢ (yᵢ − xᵢᵀw)² is the polynomial
    Σᵢyᵢ² − (2Σᵢyᵢxᵢ)ᵀw + Σ_{j≤l} c_{jl} w_j w_l with c_jj = Σᵢx_ij², c_jl = 2Σᵢx_ij x_il.
    Laplace noise of scale Δ/ε, Δ = 2(D + 1)² (the paper's sensitivity for linear
    regression), is added to every coefficient of a degree-1 and degree-2 monomial (the
    constant does not move the minimiser). The noisy quadratic form M may be indefinite, so,
    following the paper's Section 5, it is regularised and spectrally trimmed: M + ρI with
    ρ = ``ridge`` · Δ/ε, then eigenvalues <= 0 and their directions are removed, and the
    minimiser in the remaining subspace is taken. Coefficients are mapped back to the
    original units.

    Threat model: the weights are ε-DP w.r.t. one training record (feature and target ranges
    treated as public).

    Arguments:
        epsilon: ε > 0 (privacy budget; smaller = more private). Default 1.0.
        ridge: ρ / (Δ/ε) >= 0, the regularisation relative to the noise scale. Default 1.0.
        random_state: seed (int), ``numpy.random.RandomState`` or ``None``.

    Attributes:
        coef_ ``(d,)``, intercept_, sensitivity_ (Δ), x_min_/x_span_ ``(d,)``,
        y_min_/y_span_, n_trimmed_ (directions removed), n_features_in_.

    Shape:
        X ``(n, d)`` finite floats, y ``(n,)``; ``predict`` returns ``(n,)``.

    Example:
        >>> from invbench.tabular.data import synthetic_warfarin
        >>> data = synthetic_warfarin(n=1000, seed=0)
        >>> model = FunctionalMechanismLinearRegression(epsilon=10.0, random_state=0)
        >>> model.fit(data.X, data.y).predict(data.X).shape
        (1000,)
    """

    def __init__(
        self, epsilon: float = 1.0, *, ridge: float = 1.0, random_state: Any = None
    ) -> None:
        self.epsilon = epsilon
        self.ridge = ridge
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> FunctionalMechanismLinearRegression:
        """Fit with Laplace-perturbed objective coefficients; returns ``self``."""
        eps = check_param(self, "epsilon", self.epsilon, kind="float", low=0.0,
                          low_inclusive=False)
        ridge = check_param(self, "ridge", self.ridge, kind="float", low=0.0)
        X, y = check_Xy(self, X, y)
        rng = check_random_state(self.random_state)
        n, d = X.shape
        D = d + 1
        x_lo, x_span = _minmax(X)
        xs = 2.0 * (X - x_lo) / x_span - 1.0
        xa = np.hstack([xs, np.ones((n, 1))]) / math.sqrt(D)
        y_lo, y_span = float(y.min()), float(np.ptp(y)) or 1.0
        ys = 2.0 * (y - y_lo) / y_span - 1.0

        delta_f = 2.0 * (D + 1) ** 2
        scale = delta_f / eps
        # degree-1 coefficients: -2 Σ y x_j
        alpha = -2.0 * (xa.T @ ys) + rng.laplace(0.0, scale, size=D)
        # degree-2 coefficients of distinct monomials w_j w_l (j <= l)
        gram = xa.T @ xa
        coef2 = np.where(np.eye(D, dtype=bool), gram, 2.0 * gram)
        iu = np.triu_indices(D)
        noisy = np.zeros((D, D))
        noisy[iu] = coef2[iu] + rng.laplace(0.0, scale, size=iu[0].size)
        M = (noisy + noisy.T) / 2.0  # off-diagonal: c_jl / 2 on both sides
        np.fill_diagonal(M, np.diag(noisy))
        M = M + ridge * 2.0 * math.sqrt(2.0 * D) * scale * np.eye(D)
        vals, vecs = np.linalg.eigh(M)
        keep = vals > 1e-10 * max(1.0, float(np.abs(vals).max()))
        # minimiser of wᵀMw + αᵀw in the kept eigen-subspace: w = -½ Σ q (qᵀα)/λ
        proj = vecs[:, keep].T @ alpha
        w = -0.5 * vecs[:, keep] @ (proj / vals[keep])

        # back to original units: ŷ = y_lo + (ys_hat + 1) y_span / 2,
        # ys_hat = (Σ_j w_j xs_j + w_D)/√D, xs_j = 2 (x_j - lo_j)/span_j - 1
        w_feat = w[:d] / math.sqrt(D)
        w0 = w[d] / math.sqrt(D)
        coef_s = 2.0 * w_feat / x_span
        icpt_s = w0 - float(np.sum(w_feat)) - float(coef_s @ x_lo)
        self.coef_ = coef_s * y_span / 2.0
        self.intercept_ = y_lo + (icpt_s + 1.0) * y_span / 2.0
        self.sensitivity_ = delta_f
        self.x_min_, self.x_span_ = x_lo, x_span
        self.y_min_, self.y_span_ = y_lo, y_span
        self.n_trimmed_ = int(D - keep.sum())
        self.n_features_in_ = d
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n,)`` for ``X`` ``(n, d)``."""
        check_is_fitted(self, "coef_")
        X = check_X(self, X, n_features=self.n_features_in_)
        return X @ self.coef_ + self.intercept_


class DPSGDLinearRegression(RegressorMixin, BaseEstimator):
    r"""(ε, δ)-differentially private linear regression trained with DP-SGD (opacus).

    Paper: Abadi et al., "Deep Learning with Differential Privacy", CCS 2016,
    https://arxiv.org/abs/1607.00133; implementation: opacus' ``PrivacyEngine``
    (``make_private_with_epsilon``, Poisson sampling, per-sample clipping at
    ``max_grad_norm``, noise calibrated by the RDP accountant to reach ``epsilon`` after
    ``epochs``). Features and target are standardised with the training statistics (treated
    as public) and the weights mapped back.

    Threat model: the weights are (ε, δ)-DP w.r.t. one training record.

    Arguments:
        epsilon: target ε > 0. Default 1.0.
        delta: δ in (0, 1). Default 1e-5.
        epochs: passes over the data (>= 1). Default 5.
        lr: SGD learning rate (> 0). Default 0.1.
        max_grad_norm: per-sample gradient clipping norm (> 0). Default 1.0.
        batch_size: expected batch size (>= 1). Default 256.
        random_state: int seed or ``None``.
        device: torch device string. Default ``"cpu"``.

    Attributes:
        coef_ ``(d,)``, intercept_, epsilon_ (ε spent, from the accountant),
        noise_multiplier_, n_features_in_.

    Raises:
        MissingExtraError: opacus is not installed (``pip install 'invbench[dp]'``).

    Example:
        >>> from invbench.tabular.data import synthetic_warfarin
        >>> data = synthetic_warfarin(n=1000, seed=0)
        >>> model = DPSGDLinearRegression(epsilon=1.0, random_state=0).fit(data.X, data.y)
        >>> model.epsilon_ <= 1.0 + 1e-6
        True
    """

    def __init__(
        self,
        epsilon: float = 1.0,
        *,
        delta: float = 1e-5,
        epochs: int = 5,
        lr: float = 0.1,
        max_grad_norm: float = 1.0,
        batch_size: int = 256,
        random_state: Any = None,
        device: str = "cpu",
    ) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.epochs = epochs
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device

    def fit(self, X: Any, y: Any) -> DPSGDLinearRegression:
        """Train with DP-SGD; returns ``self``."""
        eps = check_param(self, "epsilon", self.epsilon, kind="float", low=0.0,
                          low_inclusive=False)
        delta = check_param(self, "delta", self.delta, kind="float", low=0.0, high=1.0,
                            low_inclusive=False, high_inclusive=False)
        epochs = check_param(self, "epochs", self.epochs, kind="int", low=1)
        lr = check_param(self, "lr", self.lr, kind="float", low=0.0, low_inclusive=False)
        clip = check_param(self, "max_grad_norm", self.max_grad_norm, kind="float", low=0.0,
                           low_inclusive=False)
        batch = check_param(self, "batch_size", self.batch_size, kind="int", low=1)
        device = check_param(self, "device", self.device, kind="str")
        X, y = check_Xy(self, X, y)
        torch = optional_import("torch", extra="dp", purpose="DPSGDLinearRegression")
        opacus = optional_import("opacus", extra="dp", purpose="DPSGDLinearRegression")
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        n, d = X.shape
        x_mu = X.mean(axis=0)
        x_sd = X.std(axis=0)
        x_sd = np.where(x_sd > 0, x_sd, 1.0)
        y_mu, y_sd = float(y.mean()), float(y.std()) or 1.0
        dev = torch.device(device)
        xt = torch.as_tensor((X - x_mu) / x_sd, dtype=torch.float32, device=dev)
        yt = torch.as_tensor((y - y_mu) / y_sd, dtype=torch.float32, device=dev)[:, None]
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            model = torch.nn.Linear(d, 1).to(dev)
            torch.nn.init.zeros_(model.weight)
            torch.nn.init.zeros_(model.bias)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
            loader = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(xt, yt), batch_size=min(batch, n)
            )
            with warnings.catch_warnings():
                # opacus warns about its non-cryptographic RNG and the accountant's alpha
                # grid; both are expected for a benchmark baseline
                warnings.simplefilter("ignore")
                engine = opacus.PrivacyEngine(accountant="rdp")
                model, optimizer, loader = engine.make_private_with_epsilon(
                    module=model,
                    optimizer=optimizer,
                    data_loader=loader,
                    target_epsilon=eps,
                    target_delta=delta,
                    epochs=epochs,
                    max_grad_norm=clip,
                )
                loss_fn = torch.nn.MSELoss()
                model.train()
                for _ in range(epochs):
                    for xb, yb in loader:
                        if xb.shape[0] == 0:
                            continue
                        optimizer.zero_grad(set_to_none=True)
                        loss_fn(model(xb), yb).backward()
                        optimizer.step()
                spent = float(engine.get_epsilon(delta))
            inner = model._module if hasattr(model, "_module") else model
            with torch.inference_mode():
                w = inner.weight.detach().to("cpu", torch.float64).numpy()[0]
                b = float(inner.bias.detach().to("cpu", torch.float64).numpy()[0])
        coef = w / x_sd
        self.coef_ = coef * y_sd
        self.intercept_ = y_mu + y_sd * (b - float(coef @ x_mu))
        self.epsilon_ = spent
        self.noise_multiplier_ = float(optimizer.noise_multiplier)
        self.n_features_in_ = d
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n,)`` for ``X`` ``(n, d)``."""
        check_is_fitted(self, "coef_")
        X = check_X(self, X, n_features=self.n_features_in_)
        return X @ self.coef_ + self.intercept_
