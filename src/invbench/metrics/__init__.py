"""Metrics: the evaluation model, attack accuracy, KNN distance and reference points.

Every reconstruction is judged by an independent evaluation model (:func:`train_evaluator`)
and reported next to two references (:func:`reference_reconstructions`): held-out private
images (real success) and uniform noise (no information).

Example::

    from invbench.metrics import evaluate, reference_reconstructions, train_evaluator
    ev = train_evaluator(protocol, seed=0)
    scores = evaluate(recon, protocol, ev)     # acc1, acc5, acc1_std, acc5_std, knn_dist, ...
"""

from __future__ import annotations

from invbench.metrics import accuracy, knn  # noqa: F401  (registration)
from invbench.metrics.base import Metric, check_reconstruction, evaluate
from invbench.metrics.evaluator import Evaluator, derive_seed, train_evaluator
from invbench.metrics.references import reference_reconstructions, target_accuracy

__all__ = [
    "Evaluator",
    "Metric",
    "check_reconstruction",
    "derive_seed",
    "evaluate",
    "reference_reconstructions",
    "target_accuracy",
    "train_evaluator",
]
