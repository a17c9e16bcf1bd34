"""Metrics: the evaluators, the metric set, the references and the verified ``success``.

Every reconstruction is judged by an :class:`EvalContext` (a standard evaluator, evaluators of
other families, an adversarially trained robust evaluator and calibrated thresholds; built by
:func:`build_judges`) and reported next to three references (held-out private images, uniform
noise, adversarial noise made on the target; see :mod:`invbench.metrics.references`).

Example::

    from invbench.metrics import build_judges, evaluate
    ctx, _ = build_judges(protocol, EvaluatorSpec(), seed=0)
    scores = evaluate(recon, ctx)     # success, acc1, knn_dist, fid, kid, precision, ...
"""

from __future__ import annotations

from invbench.metrics import (  # noqa: F401  (registration)
    accuracy,
    ensemble,
    feature_distance,
    fid,
    knn,
    pixel,
    prdc,
    success,
)
from invbench.metrics.base import Judgement, Metric, check_reconstruction, evaluate, judge
from invbench.metrics.context import EvalContext
from invbench.metrics.evaluator import Evaluator, derive_seed, train_evaluator
from invbench.metrics.judges import build_judges
from invbench.metrics.references import (
    adversarial_reference,
    noise_reference,
    private_test_reference,
    split_holdout,
    target_accuracy,
)

__all__ = [
    "EvalContext",
    "Evaluator",
    "Judgement",
    "Metric",
    "adversarial_reference",
    "build_judges",
    "check_reconstruction",
    "derive_seed",
    "evaluate",
    "judge",
    "noise_reference",
    "private_test_reference",
    "split_holdout",
    "target_accuracy",
    "train_evaluator",
]
