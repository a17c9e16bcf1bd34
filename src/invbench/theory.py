"""The differential-privacy bound on model-inversion privacy loss, and related calculators.

Paper: T. Wang, Y. Zhang, R. Jia, "Improving Robustness to Model Inversion Attacks via
Mutual Information Regularization", AAAI 2021 (https://arxiv.org/abs/2009.05241).

**What is bounded.** The MID paper formalises model inversion (MI) as a game: a training
set of ``n`` records is drawn, a model is learned from it, and the adversary, holding only
the released model, tries to tell which data the model was trained on. The *MI privacy
loss* is the adversary's advantage in that game: its success probability above chance, for
the best adversary, normalised to ``[0, 1]``. For two candidate training sets ``D0`` and
``D1`` that are equally likely a priori, the best advantage is
``2 * Pr[success] - 1 = TV(M(D0), M(D1))``, the total-variation distance between the
distributions of the released model. Unlike membership inference, an MI attacker targets the
*population* the records come from, so the two candidate training sets may differ in every
one of their ``n`` records.

**The theorem.** If the learner is (ε, δ)-differentially private with respect to one record,
then for training sets of ``n`` records the MI privacy loss is at most::

    (e^{nε} - 1) / (e^{nε} + 1)  +  2 (e^{nε} - 1) δ / ((e^{nε} + 1)(e^{ε} - 1)).

(The paper's full text was not available to us; this reading of "MI privacy loss" as a
distinguishing advantage is the one under which the formula is exactly the standard
derivation below, and the tests check it as such.) It follows from group privacy (two sets
differing in ``n`` records are (nε, δ·(e^{nε} - 1)/(e^{ε} - 1))-indistinguishable) and
the fact that two
(ε', δ')-indistinguishable distributions are at most ``(e^{ε'} - 1 + 2δ') / (e^{ε'} + 1)``
apart in total variation. The first term is ``tanh(nε/2)``; the second is
``2δ · tanh(nε/2) / (e^{ε} - 1)``.

**The point.** ``tanh(nε/2) -> 1`` unless ``nε`` stays bounded: for the bound to protect
anything, ε must be ``O(1/n)`` (``o(1/n)`` for the loss to vanish as the training set
grows). DP budgets used in practice (ε ≈ 0.1 … 10 with thousands of records) give a loss
bound of essentially 1, which is why DP is a poor defense against model inversion at useful
utility (the paper's explanation of what Fredrikson et al. observed empirically).

**How tight it is** (worked out for this module, verified in ``tests/test_theory.py``): for
``n = 1`` the bound is attained exactly, at every δ, by randomised response on the one
record. For ``n >= 2`` and δ = 0 the best advantage any ε-DP mechanism can reach is
:func:`max_pure_dp_advantage` — ``1 - e^{-nε/2}`` for even ``n``,
``1 - 2 e^{-(n-1)ε/2} / (1 + e^{ε})`` for odd ``n`` — attained by the geometric mechanism on
the count of ones with a threshold test. That is strictly below the bound (the gap is at
most ``(nε)^2 / 8``), so the bound is tight to first order in ``nε`` and as ``nε -> ∞``, but
is not attained exactly once ``n >= 2``.

Saturation: the returned loss is clipped to ``1`` (an advantage cannot exceed 1; the raw
expression can exceed 1 when δ > 0 and is then vacuous).

Example::

    >>> round(mi_privacy_loss_bound(0.1, 0.0, n=10), 4)   # tanh(0.5)
    0.4621
    >>> round(min_epsilon_for_loss(0.5, 0.0, n=1000), 6)   # 2 atanh(0.5) / 1000
    0.001099
"""

from __future__ import annotations

import math
import numbers

from scipy.optimize import brentq

from invbench.errors import ConfigError

__all__ = [
    "max_pure_dp_advantage",
    "mi_privacy_loss_bound",
    "min_epsilon_for_loss",
]


def _check_eps(eps: object, *, name: str = "eps") -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real):
        raise ConfigError(f"'{name}' must be a finite float >= 0. Got {eps!r} instead.")
    value = float(eps)
    if not math.isfinite(value) or value < 0.0:
        raise ConfigError(f"'{name}' must be a finite float >= 0. Got {eps!r} instead.")
    return value


def _check_delta(delta: object) -> float:
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real):
        raise ConfigError(f"'delta' must be a float in [0, 1]. Got {delta!r} instead.")
    value = float(delta)
    if not (0.0 <= value <= 1.0):  # also refuses NaN
        raise ConfigError(f"'delta' must be a float in [0, 1]. Got {delta!r} instead.")
    return value


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or int(n) < 1:
        raise ConfigError(f"'n' must be a positive integer (records). Got {n!r} instead.")
    return int(n)


def _tanh_half(n: int, eps: float) -> float:
    """``tanh(n·eps/2) = (e^{nε} - 1)/(e^{nε} + 1)``, without overflow for huge ``nε``."""
    return math.tanh(0.5 * float(n) * eps)


def _delta_ratio(n: int, eps: float) -> float:
    """``tanh(nε/2) / (e^{ε} - 1)`` = ``(e^{nε} - 1) / ((e^{nε} + 1)(e^{ε} - 1))``.

    As ``ε -> 0`` both numerator and denominator vanish; the limit is ``n / 2``. For ``nε``
    below 1e-8 the Taylor remainders ((nε)²/12 and ε/2, relative) are below double
    precision or negligible, so the limit's first-order form is used to avoid subnormal
    rounding.
    """
    x = 0.5 * float(n) * eps
    if x < 1e-8:
        return 0.5 * float(n) / (1.0 + 0.5 * eps)
    if eps > 1.0:  # 1/(e^ε - 1) = e^{-ε}/(1 - e^{-ε}), no overflow for huge ε
        return math.tanh(x) * math.exp(-eps) / -math.expm1(-eps)
    return math.tanh(x) / math.expm1(eps)


def mi_privacy_loss_bound(eps: float, delta: float, n: int) -> float:
    """Upper bound on the MI privacy loss of an (ε, δ)-DP learner trained on ``n`` records.

    Wang, Zhang & Jia (AAAI 2021), https://arxiv.org/abs/2009.05241:
    ``(e^{nε} - 1)/(e^{nε} + 1) + 2(e^{nε} - 1)δ / ((e^{nε} + 1)(e^{ε} - 1))``, computed as
    ``tanh(nε/2) · (1 + 2δ / expm1(ε))`` so it never overflows; at ``ε = 0`` the limit
    ``n·δ`` is used (the first term vanishes and ``(e^{nε}-1)/(e^{ε}-1) -> n``). The result
    is clipped to ``[0, 1]``: it bounds an advantage (a total-variation distance), and the
    raw expression exceeds 1 only where it is vacuous. See the module docstring for what
    the loss means and how tight the bound is.

    Args:
        eps: the learner's ε, a finite float >= 0 (per record).
        delta: the learner's δ, in ``[0, 1]``.
        n: the number of training records, a positive integer.

    Returns:
        A float in ``[0, 1]``; non-decreasing in ``eps``, ``delta`` and ``n``.

    Raises:
        ConfigError: an argument is out of range (one line naming it).

    Example::

        >>> round(mi_privacy_loss_bound(1.0, 0.0, n=1), 6)   # (e - 1)/(e + 1)
        0.462117
    """
    e = _check_eps(eps)
    d = _check_delta(delta)
    m = _check_n(n)
    if e == 0.0:
        return min(1.0, m * d)
    main = _tanh_half(m, e)
    if main >= 1.0 and d == 0.0:
        return 1.0
    total = main + 2.0 * d * _delta_ratio(m, e)
    return min(1.0, max(0.0, total))


def max_pure_dp_advantage(eps: float, n: int) -> float:
    """The exact best MI advantage against any ε-DP mechanism (δ = 0) on ``n`` records.

    The largest total-variation distance ``TV(M(D0), M(D1))`` over all ε-DP mechanisms
    ``M`` and training sets ``D0, D1`` differing in all ``n`` records. A threshold test
    reduces any mechanism to a chain ``q_0 … q_n`` of acceptance probabilities with
    ``q_k <= e^{ε} q_{k-1}`` and ``1 - q_{k-1} <= e^{ε}(1 - q_k)``; chaining the first
    inequality up to the middle record and the second down to it gives::

        n = 2m:     1 - e^{-mε}
        n = 2m + 1: 1 - 2 e^{-mε} / (1 + e^{ε})

    Both are attained by the geometric (discrete Laplace) mechanism on the count of ones,
    ``Pr[c + z] ∝ e^{-ε|z|}``, with the test "output > n/2". For ``n = 1`` this equals
    :func:`mi_privacy_loss_bound` at δ = 0; for ``n >= 2`` it is strictly smaller when
    ``ε > 0``, so that bound is not attained exactly there.

    Args:
        eps: ε, a finite float >= 0.
        n: number of records, a positive integer.

    Returns:
        A float in ``[0, 1)``.

    Example::

        >>> round(max_pure_dp_advantage(1.0, 2), 6)   # 1 - e^{-1}
        0.632121
    """
    e = _check_eps(eps)
    m = _check_n(n)
    half = m // 2
    if m % 2 == 0:
        return -math.expm1(-half * e)
    # 1 - 2 e^{-half·ε}/(1 + e^{ε}), written to stay accurate for small and huge ε
    return 1.0 - math.exp(-half * e) * (1.0 - math.tanh(0.5 * e))


def min_epsilon_for_loss(level: float, delta: float, n: int) -> float:
    """The privacy budget ε at which the MI privacy-loss bound reaches ``level``.

    Because :func:`mi_privacy_loss_bound` is non-decreasing in ε, the bound stays at or
    below ``level`` exactly for ``ε <= ε*``, and ``ε*`` is the smallest ε at which the loss
    reaches ``level``; this function returns ``ε*`` (so "keep ε at most this"). With
    ``delta = 0`` it is ``2·atanh(level)/n``: it shrinks like ``1/n``, the paper's point
    that ε must be ``o(1/n)``. Found by bracketing and Brent's method to ~1e-14 relative.

    Args:
        level: the largest acceptable loss, in ``(0, 1)``.
        delta: the learner's δ, in ``[0, 1]``.
        n: number of training records, a positive integer.

    Returns:
        ``ε* >= 0`` (``0.0`` when ``level`` equals the δ-only floor ``n·δ``).

    Raises:
        ConfigError: ``level`` is not in ``(0, 1)``, or it is below the floor ``n·δ`` that
            the bound keeps even at ε = 0 (no ε reaches it).

    Example::

        >>> round(min_epsilon_for_loss(0.1, 0.0, n=100), 8)   # 2 atanh(0.1) / 100
        0.00200671
    """
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise ConfigError(f"'level' must be a float in (0, 1). Got {level!r} instead.")
    lv = float(level)
    if not (0.0 < lv < 1.0):
        raise ConfigError(f"'level' must be a float in (0, 1). Got {level!r} instead.")
    d = _check_delta(delta)
    m = _check_n(n)
    floor = mi_privacy_loss_bound(0.0, d, m)
    if floor > lv:
        raise ConfigError(
            f"no epsilon keeps the loss bound under level={lv:g}: with delta={d:g} and n={m} "
            f"it is at least n*delta={floor:g} even at eps=0; lower delta or raise the level"
        )
    if floor == lv:
        return 0.0
    if d == 0.0:
        return 2.0 * math.atanh(lv) / m

    def gap(e: float) -> float:
        return mi_privacy_loss_bound(e, d, m) - lv

    hi = 1.0
    while gap(hi) < 0.0:
        hi *= 2.0
    while hi > 1e-300 and gap(0.5 * hi) >= 0.0:
        hi *= 0.5
    lo = 0.5 * hi
    if gap(lo) >= 0.0:  # pragma: no cover - only below 1e-300
        return lo
    return float(brentq(gap, lo, hi, xtol=hi * 1e-15, rtol=1e-15))
