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

# Rényi orders for the RDP accountant: opacus' default grid has 99 fractional orders whose
# evaluation dominates the fit time (seconds); integer orders plus 1.5 give valid (slightly
# looser) bounds in milliseconds.
_RDP_ORDERS: list[float] = [1.5, *range(2, 64), 80, 128, 256]


def _minmax(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo = v.min(axis=0)
    span = v.max(axis=0) - lo
    return lo, np.where(span > 0, span, 1.0)


class FunctionalMechanismLinearRegression(RegressorMixin, BaseEstimator):
    r"""ε-differentially private least squares by the functional mechanism.

    Paper: Zhang et al., "Functional Mechanism: Regression Analysis under Differential
    Privacy", VLDB 2012, https://arxiv.org/abs/1208.0219.

    Algorithm. Each feature is centred and divided by its largest absolute deviation (so it
    lies in [-1, 1]), a constant 1 is appended for the intercept, and each row is divided by
    √D (D = d + 1) so that ‖x‖₂ ≤ 1; y is centred, divided by ``y_clip``·sd(y) and clipped
    to [-1, 1]. The least-squares objective Σᵢ (yᵢ − xᵢᵀw)² is the polynomial
    Σᵢyᵢ² − (2Σᵢyᵢxᵢ)ᵀw + Σ_{j≤l} c_{jl} w_j w_l with c_jj = Σᵢx_ij², c_jl = 2Σᵢx_ij x_il.
    Laplace noise of scale Δ/ε, Δ = 2(D + 1)² (the paper's sensitivity for linear
    regression), is added to every coefficient of a degree-1 and degree-2 monomial (the
    constant does not move the minimiser). The noisy quadratic form M may be indefinite, so,
    following the paper's Section 5, it is regularised and spectrally trimmed: M + ρI with
    ρ = ``ridge`` · 2√(2D) · Δ/ε (about the spectral norm of the symmetric Laplace noise
    matrix, so M + ρI is positive definite with high probability), then eigenvalues <= 0
    and their directions are removed, and the minimiser −½M⁺α in the remaining subspace is
    taken. Coefficients are mapped back to the original units. Centring (rather than mapping
    [min, max] to [-1, 1]) makes a heavily regularised model predict the mean, so the MSE
    saturates near Var(y) at small ε instead of exploding.

    Threat model: the weights are ε-DP w.r.t. one training record (the feature and target
    centring/scaling statistics are treated as public).

    Arguments:
        epsilon: ε > 0 (privacy budget; smaller = more private). Default 1.0.
        ridge: ρ in units of the noise's expected spectral norm, >= 0. Default 1.0.
        y_clip: the target is clipped at ``y_clip`` standard deviations around its mean
            (> 0), or ``None`` to scale by its largest deviation without clipping.
            Default 3.0.
        random_state: seed (int), ``numpy.random.RandomState`` or ``None``.

    Attributes:
        coef_ ``(d,)``, intercept_, sensitivity_ (Δ),
        x_mean_/x_span_ ``(d,)``, y_mean_/y_span_, n_trimmed_ (directions removed),
        n_features_in_.

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
        self,
        epsilon: float = 1.0,
        *,
        ridge: float = 1.0,
        y_clip: float | None = 3.0,
        random_state: Any = None,
    ) -> None:
        self.epsilon = epsilon
        self.ridge = ridge
        self.y_clip = y_clip
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> FunctionalMechanismLinearRegression:
        """Fit with Laplace-perturbed objective coefficients; returns ``self``."""
        eps = check_param(self, "epsilon", self.epsilon, kind="float", low=0.0,
                          low_inclusive=False)
        ridge = check_param(self, "ridge", self.ridge, kind="float", low=0.0)
        y_clip = check_param(self, "y_clip", self.y_clip, kind="float", low=0.0,
                             low_inclusive=False, allow_none=True)
        X, y = check_Xy(self, X, y)
        rng = check_random_state(self.random_state)
        n, d = X.shape
        D = d + 1
        x_mu = X.mean(axis=0)
        x_span = np.abs(X - x_mu).max(axis=0)
        x_span = np.where(x_span > 0, x_span, 1.0)
        xa = np.hstack([(X - x_mu) / x_span, np.ones((n, 1))]) / math.sqrt(D)
        y_mu = float(y.mean())
        y_span = y_clip * float(y.std()) if y_clip is not None else float(np.abs(y - y_mu).max())
        y_span = y_span if y_span > 0 else 1.0
        ys = np.clip((y - y_mu) / y_span, -1.0, 1.0)

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

        # back to original units: ŷ = y_mu + y_span (Σ_j w_j (x_j - mu_j)/span_j + w_D)/√D
        coef_s = w[:d] / (math.sqrt(D) * x_span)
        self.coef_ = y_span * coef_s
        self.intercept_ = y_mu + y_span * (w[d] / math.sqrt(D) - float(coef_s @ x_mu))
        self.sensitivity_ = delta_f
        self.x_mean_, self.x_span_ = x_mu, x_span
        self.y_mean_, self.y_span_ = y_mu, y_span
        self.n_trimmed_ = int(D - keep.sum())
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n,)`` for ``X`` ``(n, d)``."""
        check_is_fitted(self, "coef_")
        X = check_X(self, X)
        return X @ self.coef_ + self.intercept_


class DPSGDLinearRegression(RegressorMixin, BaseEstimator):
    r"""(ε, δ)-differentially private linear regression trained with DP-SGD (opacus).

    Paper: Abadi et al., "Deep Learning with Differential Privacy", CCS 2016,
    https://arxiv.org/abs/1607.00133; implementation: opacus' ``PrivacyEngine``
    (Poisson sampling, per-sample clipping at ``max_grad_norm``; the noise multiplier is
    calibrated with opacus' ``get_noise_multiplier`` and the RDP accountant, on Rényi orders
    1.5, 2..63, 80, 128, 256, to reach ``epsilon`` after ``epochs``; this is what
    ``make_private_with_epsilon`` does, minus opacus' slow fractional-order grid).
    Features and target are standardised with the training statistics (treated
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
        get_noise_multiplier = optional_import(
            "opacus.accountants.utils", extra="dp", purpose="DPSGDLinearRegression"
        ).get_noise_multiplier
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        n, d = X.shape
        x_mu = X.mean(axis=0)
        x_sd = X.std(axis=0)
        x_sd = np.where(x_sd > 0, x_sd, 1.0)
        y_mu, y_sd = float(y.mean()), float(y.std()) or 1.0
        dev = torch.device(device)
        xt = torch.as_tensor((X - x_mu) / x_sd, dtype=torch.float32, device=dev)
        yt = torch.as_tensor((y - y_mu) / y_sd, dtype=torch.float32, device=dev)[:, None]
        cuda_ids = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda_ids):
            torch.manual_seed(seed)
            model = torch.nn.Linear(d, 1).to(dev)
            torch.nn.init.zeros_(model.weight)
            torch.nn.init.zeros_(model.bias)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
            loader = torch.utils.data.DataLoader(
                torch.utils.data.TensorDataset(xt, yt), batch_size=min(batch, n)
            )
            sample_rate = 1.0 / len(loader)
            with warnings.catch_warnings():
                # opacus warns about its non-cryptographic RNG and the accountant's alpha
                # grid; both are expected for a benchmark baseline
                warnings.simplefilter("ignore")
                sigma = get_noise_multiplier(
                    target_epsilon=eps, target_delta=delta, sample_rate=sample_rate,
                    epochs=epochs, accountant="rdp", alphas=_RDP_ORDERS,
                )
                engine = opacus.PrivacyEngine(accountant="rdp")
                model, optimizer, loader = engine.make_private(
                    module=model,
                    optimizer=optimizer,
                    data_loader=loader,
                    noise_multiplier=sigma,
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
                spent = float(engine.accountant.get_epsilon(delta=delta, alphas=_RDP_ORDERS))
            inner = model._module if hasattr(model, "_module") else model
            with torch.inference_mode():
                w = inner.weight.detach().to("cpu", torch.float64).numpy()[0]
                b = float(inner.bias.detach().to("cpu", torch.float64).numpy()[0])
        coef = w / x_sd
        self.coef_ = coef * y_sd
        self.intercept_ = y_mu + y_sd * (b - float(coef @ x_mu))
        self.epsilon_ = spent
        self.noise_multiplier_ = float(optimizer.noise_multiplier)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``(n,)`` for ``X`` ``(n, d)``."""
        check_is_fitted(self, "coef_")
        X = check_X(self, X)
        return X @ self.coef_ + self.intercept_
