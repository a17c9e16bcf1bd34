"""One parameter-validation helper for the tabular scikit-learn estimators.

scikit-learn stores hyperparameters unchanged in ``__init__`` and validates them in ``fit``;
every tabular estimator and attack calls :func:`check_param` there, so all messages follow
one template::

    The 'lam' parameter of MIDLinearRegression must be a float >= 0. Got -1 instead.

and raise :class:`invbench.errors.ConfigError` (a ``ValueError``, as scikit-learn expects).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import Any, Literal

import numpy as np

from invbench.errors import ConfigError, DataError

__all__ = ["check_param", "check_X", "check_Xy"]

Kind = Literal["float", "int", "str", "bool"]


def _fmt(v: float) -> str:
    return repr(int(v)) if float(v).is_integer() else repr(float(v))


def _range_words(
    low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool
) -> str:
    if low is not None and high is not None:
        lb = "[" if low_inclusive else "("
        rb = "]" if high_inclusive else ")"
        return f" in the range {lb}{_fmt(low)}, {_fmt(high)}{rb}"
    if low is not None:
        return f" {'>=' if low_inclusive else '>'} {_fmt(low)}"
    if high is not None:
        return f" {'<=' if high_inclusive else '<'} {_fmt(high)}"
    return ""


def check_param(
    owner: object | str,
    name: str,
    value: Any,
    *,
    kind: Kind,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    options: Collection[str] | None = None,
    allow_none: bool = False,
    allow_inf: bool = False,
) -> Any:
    """Validate one hyperparameter and return it converted (``float``/``int``/``str``/``bool``).

    Args:
        owner: the estimator (its class name is used in the message) or a name string.
        name: the parameter's name, as in ``__init__``.
        value: the value to check.
        kind: ``"float"`` (ints accepted, bools refused, NaN refused, inf only with
            ``allow_inf``), ``"int"`` (integral numbers, bools refused), ``"str"`` (with
            ``options``, one of them) or ``"bool"``.
        low, high: optional bounds; ``low_inclusive`` / ``high_inclusive`` choose ``>=``/``>``.
        options: allowed strings for ``kind="str"``.
        allow_none: ``None`` is accepted (and returned as ``None``).

    Raises:
        ConfigError: ``"The 'lam' parameter of MIDLinearRegression must be a float >= 0.
        Got -1 instead."``

    Example:
        >>> check_param("MIDLinearRegression", "lam", 0.5, kind="float", low=0)
        0.5
    """
    owner_name = owner if isinstance(owner, str) else type(owner).__name__
    if kind == "str":
        want = "a str"
        if options is not None:
            want += " among {" + ", ".join(repr(o) for o in sorted(options)) + "}"
    elif kind == "bool":
        want = "a bool"
    else:
        article = "an" if kind == "int" else "a"
        want = f"{article} {kind}" + _range_words(low, high, low_inclusive, high_inclusive)
    if allow_none:
        want += " or None"

    def fail() -> ConfigError:
        return ConfigError(
            f"The '{name}' parameter of {owner_name} must be {want}. Got {value!r} instead."
        )

    if value is None:
        if allow_none:
            return None
        raise fail()
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise fail()
    if kind == "str":
        if not isinstance(value, str) or (options is not None and value not in options):
            raise fail()
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise fail()
    if kind == "int":
        if not isinstance(value, numbers.Integral):
            raise fail()
        out: float | int = int(value)
    else:
        out = float(value)
        if math.isnan(out) or (math.isinf(out) and not allow_inf):
            raise fail()
    if low is not None and (out < low or (out == low and not low_inclusive)):
        raise fail()
    if high is not None and (out > high or (out == high and not high_inclusive)):
        raise fail()
    return out


def _one_line(owner: object | str, exc: Exception) -> DataError:
    owner_name = owner if isinstance(owner, str) else type(owner).__name__
    return DataError(f"{owner_name}: {' '.join(str(exc).split())}")


def _validate_data(estimator: Any, X: Any, y: Any, *, reset: bool) -> Any:
    kwargs: dict[str, Any] = {"reset": reset, "dtype": np.float64}
    if y is not None:
        kwargs["y_numeric"] = True
    try:
        from sklearn.utils.validation import validate_data
    except ImportError:  # scikit-learn < 1.6
        return estimator._validate_data(X, y if y is not None else "no_validation", **kwargs)
    return validate_data(estimator, X, y if y is not None else "no_validation", **kwargs)


def check_X(estimator: Any, X: Any) -> np.ndarray:
    """``X`` for ``predict``: a finite 2-D float64 array with the width seen in ``fit``.

    Uses scikit-learn's ``validate_data`` (so messages match what scikit-learn's estimator
    checks expect) and re-raises its errors as one-line :class:`DataError`.
    """
    try:
        return _validate_data(estimator, X, None, reset=False)
    except ValueError as exc:
        raise _one_line(estimator, exc) from None


def check_Xy(estimator: Any, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` for ``fit``: finite float64 arrays of matching length, or one-line
    :class:`DataError`; records ``n_features_in_`` on ``estimator``."""
    if y is None:
        raise DataError(
            f"{type(estimator).__name__} requires y to be passed, but the target y is None"
        )
    try:
        X, y = _validate_data(estimator, X, y, reset=True)
    except ValueError as exc:
        raise _one_line(estimator, exc) from None
    return X, np.asarray(y, dtype=np.float64)
