"""Tests for invbench.theory: the MID paper's DP bound on MI privacy loss, and its tightness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from scipy.stats import binom

from invbench.errors import ConfigError
from invbench.theory import max_pure_dp_advantage, mi_privacy_loss_bound, min_epsilon_for_loss

# --------------------------------------------------------------------------- hand-computed values


@pytest.mark.parametrize(
    ("eps", "delta", "n", "expected"),
    [
        # n=1, eps=1, delta=0: (e - 1)/(e + 1) = 1.718281828/3.718281828 = 0.4621171573
        (1.0, 0.0, 1, 0.46211715726000974),
        # n=10, eps=0.1: n*eps = 1, so the same number as above
        (0.1, 0.0, 10, 0.46211715726000974),
        # n=2, eps=ln 2, delta=0.01: e^{n eps} = 4, e^{eps} = 2
        #   first term (4-1)/(4+1) = 0.6 ; second 2*(4-1)*0.01 / ((4+1)*(2-1)) = 0.06/5 = 0.012
        (math.log(2.0), 0.01, 2, 0.612),
        # n=1, eps=ln 3, delta=0.1: e^{eps} = 3
        #   first (3-1)/(3+1) = 0.5 ; second 2*(3-1)*0.1 / ((3+1)*(3-1)) = 0.4/8 = 0.05
        (math.log(3.0), 0.1, 1, 0.55),
        # n=3, eps=ln 2, delta=0.001: e^{n eps} = 8, e^{eps} = 2
        #   first 7/9 = 0.777777... ; second 2*7*0.001/(9*1) = 0.014/9 = 0.0015555...
        (math.log(2.0), 0.001, 3, 7.0 / 9.0 + 0.014 / 9.0),
        # eps = 0: the limit; first term 0, (e^{n eps}-1)/(e^{eps}-1) -> n, (e^{n eps}+1) -> 2
        #   so 2 * n * delta / 2 = n * delta = 7 * 0.01 = 0.07
        (0.0, 0.01, 7, 0.07),
        # delta only, saturated: eps = 0, n = 200, delta = 0.01 -> n*delta = 2, clipped to 1
        (0.0, 0.01, 200, 1.0),
    ],
)
def test_hand_computed_values(eps: float, delta: float, n: int, expected: float) -> None:
    assert mi_privacy_loss_bound(eps, delta, n) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_overflow_saturates_at_one() -> None:
    # e^{n eps} would overflow a double (n eps = 1e9): the bound is exactly 1, not nan/inf
    assert mi_privacy_loss_bound(1000.0, 0.0, 10**6) == 1.0
    assert mi_privacy_loss_bound(1000.0, 1e-5, 10**6) == 1.0
    assert mi_privacy_loss_bound(800.0, 0.5, 1) == 1.0
    assert mi_privacy_loss_bound(1e-3, 0.0, 10**30) == 1.0


def test_epsilon_to_zero_is_continuous() -> None:
    n, delta = 50, 1e-3
    at_zero = mi_privacy_loss_bound(0.0, delta, n)
    assert at_zero == pytest.approx(n * delta)
    values = [mi_privacy_loss_bound(e, delta, n) for e in (1e-2, 1e-4, 1e-6, 1e-9, 1e-14, 1e-300)]
    gaps = [abs(v - at_zero) for v in values]
    assert all(a >= b for a, b in zip(gaps, gaps[1:], strict=False))  # shrinking
    assert gaps[-2] < 1e-11 and gaps[-1] < 1e-15
    # first order: bound ~ n delta + n eps (1 - delta)/2 for tiny eps
    e = 1e-7
    assert mi_privacy_loss_bound(e, delta, n) == pytest.approx(
        n * delta + n * e * (1 - delta) / 2, rel=1e-6
    )


def test_tends_to_one_as_n_grows() -> None:
    values = [mi_privacy_loss_bound(0.01, 0.0, n) for n in (1, 10, 100, 1000, 10_000)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    assert values[0] < 0.01 and values[-1] > 0.999_999


_eps = st.floats(min_value=0.0, max_value=60.0, allow_nan=False)
_delta = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_n = st.integers(min_value=1, max_value=10**7)


@settings(max_examples=300, deadline=None)
@given(e1=_eps, e2=_eps, delta=_delta, n=_n)
def test_monotone_in_epsilon(e1: float, e2: float, delta: float, n: int) -> None:
    lo, hi = sorted((e1, e2))
    b_lo, b_hi = mi_privacy_loss_bound(lo, delta, n), mi_privacy_loss_bound(hi, delta, n)
    assert 0.0 <= b_lo <= b_hi + 1e-12 <= 1.0 + 1e-12


@settings(max_examples=300, deadline=None)
@given(eps=_eps, d1=_delta, d2=_delta, n=_n)
def test_monotone_in_delta(eps: float, d1: float, d2: float, n: int) -> None:
    lo, hi = sorted((d1, d2))
    assert mi_privacy_loss_bound(eps, lo, n) <= mi_privacy_loss_bound(eps, hi, n) + 1e-12


@settings(max_examples=300, deadline=None)
@given(eps=_eps, delta=_delta, n1=_n, n2=_n)
def test_monotone_in_n(eps: float, delta: float, n1: int, n2: int) -> None:
    lo, hi = sorted((n1, n2))
    assert mi_privacy_loss_bound(eps, delta, lo) <= mi_privacy_loss_bound(eps, delta, hi) + 1e-12


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((-0.1, 0.0, 10), "'eps'"),
        ((float("nan"), 0.0, 10), "'eps'"),
        ((float("inf"), 0.0, 10), "'eps'"),
        (("1", 0.0, 10), "'eps'"),
        ((0.1, -1e-9, 10), "'delta'"),
        ((0.1, 1.5, 10), "'delta'"),
        ((0.1, float("nan"), 10), "'delta'"),
        ((0.1, 0.0, 0), "'n'"),
        ((0.1, 0.0, -3), "'n'"),
        ((0.1, 0.0, 2.5), "'n'"),
        ((0.1, 0.0, True), "'n'"),
    ],
)
def test_invalid_arguments(args: tuple, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        mi_privacy_loss_bound(*args)
    msg = str(info.value)
    assert field in msg and "\n" not in msg


# ------------------------------------------------------------------------ the epsilon calculator


@pytest.mark.parametrize("n", [1, 10, 1000, 10**6])
def test_min_epsilon_closed_form_at_delta_zero(n: int) -> None:
    # tanh(n eps/2) = level  <=>  eps = 2 atanh(level) / n ; e.g. level 0.5, n 1000: 0.0010986
    eps = min_epsilon_for_loss(0.5, 0.0, n)
    assert eps == pytest.approx(2 * math.atanh(0.5) / n, rel=1e-12)
    assert eps * n == pytest.approx(1.0986122886681098)  # the o(1/n) scaling


@pytest.mark.parametrize(("level", "delta", "n"), [(0.5, 1e-6, 100), (0.2, 1e-3, 100),
                                                   (0.9, 1e-7, 10**5), (0.05, 1e-8, 10**4)])
def test_min_epsilon_round_trip(level: float, delta: float, n: int) -> None:
    eps = min_epsilon_for_loss(level, delta, n)
    assert eps > 0
    assert mi_privacy_loss_bound(eps, delta, n) == pytest.approx(level, rel=1e-9)
    assert mi_privacy_loss_bound(eps * 0.999, delta, n) < level < mi_privacy_loss_bound(
        eps * 1.001, delta, n
    )


def test_min_epsilon_errors() -> None:
    with pytest.raises(ConfigError, match="n\\*delta"):
        min_epsilon_for_loss(0.05, 1e-3, 100)  # floor n*delta = 0.1 > 0.05
    for bad in (0.0, 1.0, -0.5, 2.0, float("nan")):
        with pytest.raises(ConfigError, match="'level'"):
            min_epsilon_for_loss(bad, 0.0, 10)
    assert min_epsilon_for_loss(0.25, 0.25, 1) == 0.0  # exactly the floor


# ------------------------------------------------------------------ tightness, analytic and MC
#
# The bounded quantity is the best advantage 2 Pr[success] - 1 = TV(M(D0), M(D1)) at telling
# apart two equally likely training sets D0 (n zeros) and D1 (n ones) that differ in every
# record.


def _rr_advantage_mc(eps: float, trials: int, rng: np.random.Generator) -> float:
    """Monte Carlo: one record, randomised response, attacker guesses the reported bit."""
    secret = rng.integers(0, 2, size=trials)
    flip = rng.random(trials) < 1.0 / (1.0 + math.exp(eps))
    report = secret ^ flip
    return 2.0 * float(np.mean(report == secret)) - 1.0


@pytest.mark.parametrize("eps", [0.2, 1.0, 3.0])
def test_randomised_response_attains_bound_for_one_record(eps: float) -> None:
    # analytic: success = e^eps/(1+e^eps), advantage = (e^eps - 1)/(e^eps + 1) = the bound
    success = math.exp(eps) / (1 + math.exp(eps))
    assert 2 * success - 1 == pytest.approx(mi_privacy_loss_bound(eps, 0.0, 1), rel=1e-12)
    mc = _rr_advantage_mc(eps, 200_000, np.random.default_rng(0))
    assert mc == pytest.approx(mi_privacy_loss_bound(eps, 0.0, 1), abs=0.01)  # sd ~ 0.002


@pytest.mark.parametrize(("eps", "delta"), [(0.5, 0.01), (1.0, 0.1)])
def test_approximate_dp_mechanism_attains_bound_for_one_record(eps: float, delta: float) -> None:
    # Output distributions over 4 outcomes for record 0 / record 1:
    #   P = (delta, (1-delta) e^eps/(1+e^eps), (1-delta)/(1+e^eps), 0),  Q = reversed(P)
    # (eps, delta)-DP; TV(P, Q) = delta + (1-delta) tanh(eps/2) = (e^eps - 1 + 2 delta)/(e^eps + 1)
    a = math.exp(eps) / (1 + math.exp(eps))
    p = np.array([delta, (1 - delta) * a, (1 - delta) * (1 - a), 0.0])
    q = p[::-1]
    for subset in range(16):  # check the DP inequality on every event, both directions
        mask = np.array([(subset >> i) & 1 for i in range(4)], dtype=bool)
        assert p[mask].sum() <= math.exp(eps) * q[mask].sum() + delta + 1e-12
        assert q[mask].sum() <= math.exp(eps) * p[mask].sum() + delta + 1e-12
    tv = 0.5 * float(np.abs(p - q).sum())
    assert tv == pytest.approx(mi_privacy_loss_bound(eps, delta, 1), rel=1e-12)


def _lp_max_advantage(eps: float, n: int) -> float:
    """max q_n - q_0 over chains with q_k <= e^eps q_{k-1}, 1 - q_{k-1} <= e^eps (1 - q_k)."""
    ee = math.exp(eps)
    rows, rhs = [], []
    for k in range(1, n + 1):
        r = np.zeros(n + 1)
        r[k], r[k - 1] = 1.0, -ee  # q_k - e q_{k-1} <= 0
        rows.append(r)
        rhs.append(0.0)
        r = np.zeros(n + 1)
        r[k - 1], r[k] = -1.0, ee  # -q_{k-1} + e q_k <= e - 1
        rows.append(r)
        rhs.append(ee - 1.0)
        # and the same with the roles of 0/1 outputs swapped (DP in both directions)
        r = np.zeros(n + 1)
        r[k - 1], r[k] = 1.0, -ee  # q_{k-1} <= e q_k
        rows.append(r)
        rhs.append(0.0)
        r = np.zeros(n + 1)
        r[k], r[k - 1] = -1.0, ee  # 1 - q_k <= e (1 - q_{k-1})
        rows.append(r)
        rhs.append(ee - 1.0)
    c = np.zeros(n + 1)
    c[0], c[n] = 1.0, -1.0
    res = linprog(c, A_ub=np.array(rows), b_ub=np.array(rhs), bounds=[(0, 1)] * (n + 1))
    assert res.success
    return -float(res.fun)


def _geometric_tv(eps: float, n: int) -> float:
    """TV between the geometric mechanism's outputs on counts 0 and n (exact, windowed)."""
    alpha = math.exp(-eps)
    k = int(40 / eps) + n + 5  # alpha^k < 1e-17: the tails beyond are negligible
    z = np.arange(-k, k + n + 1)
    pmf = lambda c: (1 - alpha) / (1 + alpha) * alpha ** np.abs(z - c)  # noqa: E731
    return 0.5 * float(np.abs(pmf(n) - pmf(0)).sum())


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10])
@pytest.mark.parametrize("eps", [0.05, 0.3, 1.0])
def test_exact_optimum_over_pure_dp_mechanisms(n: int, eps: float) -> None:
    best = max_pure_dp_advantage(eps, n)
    # the closed form is the LP optimum over all eps-DP mechanisms (via their best test) ...
    assert best == pytest.approx(_lp_max_advantage(eps, n), abs=1e-7)
    # ... attained by the geometric mechanism on the count of ones
    assert best == pytest.approx(_geometric_tv(eps, n), abs=1e-12)
    bound = mi_privacy_loss_bound(eps, 0.0, n)
    if n == 1:
        assert best == pytest.approx(bound, rel=1e-12)  # tight
    else:
        # not attained: strictly below, but only by a second-order gap <= (n eps)^2 / 8
        assert best < bound
        assert bound - best <= (n * eps) ** 2 / 8 + 1e-12
    # per-record randomised response reporting the noisy count is eps-DP too, and weaker
    p = 1 / (1 + math.exp(eps))
    counts = np.arange(n + 1)
    rr_tv = 0.5 * float(np.abs(binom.pmf(counts, n, 1 - p) - binom.pmf(counts, n, p)).sum())
    assert rr_tv <= best + 1e-12
    if n >= 3:
        assert rr_tv < best


@pytest.mark.parametrize(("eps", "n"), [(0.1, 4), (0.5, 3)])
def test_geometric_mechanism_monte_carlo(eps: float, n: int) -> None:
    rng = np.random.default_rng(1)
    trials = 200_000
    alpha = math.exp(-eps)

    def release(count: int) -> np.ndarray:  # count + two-sided geometric noise
        return count + rng.geometric(1 - alpha, trials) - rng.geometric(1 - alpha, trials)

    accept1 = float(np.mean(release(n) > n / 2))
    accept0 = float(np.mean(release(0) > n / 2))
    assert accept1 - accept0 == pytest.approx(max_pure_dp_advantage(eps, n), abs=0.01)
    assert accept1 - accept0 < mi_privacy_loss_bound(eps, 0.0, n)
