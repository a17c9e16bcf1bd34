"""Classical model inversion on tabular models: linear regression and decision trees.

The MID defense's linear and tree instances, their differential-privacy baselines, and
Fredrikson et al.'s MAP attacks, all as scikit-learn estimators, on the IWPC warfarin table,
a synthetic twin of it, or a user's CSV. See ``docs/tabular.md``.

Example:
    >>> from invbench.tabular import MIDLinearRegression, MAPLinearAttack, synthetic_warfarin
    >>> data = synthetic_warfarin(n=800, seed=0)
    >>> model = MIDLinearRegression(lam=1.0).fit(data.X, data.y)
    >>> guesses = MAPLinearAttack().fit(model, data).infer(model, data)
"""

from __future__ import annotations

from invbench.tabular.data import (
    IWPC_DOSE_BANDS,
    SENSITIVE_CHOICES,
    TabularData,
    load_csv,
    load_iwpc,
    load_tabular,
    synthetic_warfarin,
)
from invbench.tabular.dp_linear import DPSGDLinearRegression, FunctionalMechanismLinearRegression
from invbench.tabular.dp_tree import DPID3Classifier
from invbench.tabular.map_linear import MAPLinearAttack
from invbench.tabular.map_tree import MAPTreeAttack
from invbench.tabular.metrics import (
    attack_scores,
    classification_f1,
    majority_baseline,
    mse,
    utility,
)
from invbench.tabular.mid_linear import MIDLinearRegression
from invbench.tabular.mid_tree import MIDDecisionTreeClassifier
from invbench.tabular.tradeoff import plot_tradeoff, run_tradeoff

__all__ = [
    "IWPC_DOSE_BANDS",
    "SENSITIVE_CHOICES",
    "DPID3Classifier",
    "DPSGDLinearRegression",
    "FunctionalMechanismLinearRegression",
    "MAPLinearAttack",
    "MAPTreeAttack",
    "MIDDecisionTreeClassifier",
    "MIDLinearRegression",
    "TabularData",
    "attack_scores",
    "classification_f1",
    "load_csv",
    "load_iwpc",
    "load_tabular",
    "majority_baseline",
    "mse",
    "plot_tradeoff",
    "run_tradeoff",
    "synthetic_warfarin",
    "utility",
]
