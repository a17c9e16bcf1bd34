"""Metrics for tabular model inversion: attack accuracy / F1, the majority baseline, utility.

Fredrikson et al. (USENIX Security 2014; CCS 2015) and the MID paper report the attack's
accuracy at recovering the sensitive attribute on the model's training records and on fresh
records of the same population, against the baseline of always guessing the most common
value, and the model's utility (mean squared error for regression, F1 for classification).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from invbench.errors import DataError

__all__ = ["attack_scores", "majority_baseline", "mse", "classification_f1", "utility"]


def _codes(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of codes; got shape {arr.shape}")
    return arr.astype(np.int64)


def attack_scores(true_codes: Any, pred_codes: Any) -> dict[str, float]:
    """Accuracy and macro-F1 of an attribute-inference attack.

    Args:
        true_codes: ``(n,)`` int, the true sensitive codes.
        pred_codes: ``(n,)`` int, the attack's guesses.

    Returns:
        ``{"acc": float in [0, 1], "f1": macro F1 in [0, 1]}`` (macro over the values that
        occur in either array).

    Example:
        >>> attack_scores([0, 1, 1], [0, 1, 0])["acc"]
        0.6666666666666666
    """
    t, p = _codes("true_codes", true_codes), _codes("pred_codes", pred_codes)
    if t.shape != p.shape:
        raise DataError(f"true_codes {t.shape} and pred_codes {p.shape} must have the same length")
    if t.size == 0:
        raise DataError("attack_scores needs at least one record")
    return {
        "acc": float(np.mean(t == p)),
        "f1": float(f1_score(t, p, average="macro", zero_division=0)),
    }


def majority_baseline(train_codes: Any, eval_codes: Any) -> float:
    """Accuracy on ``eval_codes`` of always guessing the most common value of ``train_codes``.

    Example:
        >>> majority_baseline([0, 1, 1], [1, 1, 0, 2])
        0.5
    """
    tr, ev = _codes("train_codes", train_codes), _codes("eval_codes", eval_codes)
    if tr.size == 0 or ev.size == 0:
        raise DataError("majority_baseline needs non-empty train and eval codes")
    vals, counts = np.unique(tr, return_counts=True)
    return float(np.mean(ev == vals[np.argmax(counts)]))


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error of ``(n,)`` predictions."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1:
        raise DataError(f"mse needs two 1-D arrays of equal length; got {t.shape} and {p.shape}")
    return float(np.mean((t - p) ** 2))


def classification_f1(y_true: Any, y_pred: Any) -> float:
    """Macro F1 of ``(n,)`` class predictions."""
    return float(f1_score(np.asarray(y_true), np.asarray(y_pred), average="macro",
                          zero_division=0))


def utility(model: Any, X: np.ndarray, y: np.ndarray, *, task: str) -> tuple[float, str]:
    """``(value, metric name)``: ``("mse")`` for ``task="regression"``, ``("f1")`` for
    ``"tree"`` (macro F1 of the predicted classes)."""
    pred = model.predict(X)
    if task == "regression":
        return mse(y, pred), "mse"
    return classification_f1(y, pred), "f1"
