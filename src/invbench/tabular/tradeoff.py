"""Privacy-utility trade-off curves for tabular models (the MID paper's Figure 2(a)(b)).

:func:`run_tradeoff` trains, on ``repeats`` random train/test splits, the undefended model,
MID over a λ sweep and the DP baselines over an ε sweep, attacks each with the matching MAP
attack (fitted on the training split: the attacker's prior is the marginal of the sensitive
attribute, its error model the model's training error), and averages over the splits:

- ``task="regression"``: ordinary least squares (``none``), :class:`MIDLinearRegression`
  (``mid``), :class:`FunctionalMechanismLinearRegression` (``dp-functional``) and
  :class:`DPSGDLinearRegression` (``dp-sgd``, skipped with a log line when opacus is not
  installed); attack ``map-linear``; utility = test MSE.
- ``task="tree"``: ID3 (``none`` = :class:`MIDDecisionTreeClassifier` with λ = 0),
  MID trees (``mid``), :class:`DPID3Classifier` (``dp-id3``); attack ``map-tree``
  (white-box "MAP with counts" by default); utility = test macro F1 of the dose band.

Each point reports the attack's accuracy and macro F1 on the training records
(``*_train``) and on the held-out records (``*_test``). ``baseline`` is the accuracy of
always guessing the training split's most common sensitive value, on the test split.
Randomised defenses use a different seed on each split, so their points average
``repeats`` draws of the mechanism too.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from invbench.errors import ConfigError
from invbench.progress import log, progress_bar
from invbench.tabular._validation import check_param
from invbench.tabular.data import TabularData
from invbench.tabular.metrics import attack_scores, majority_baseline, utility

__all__ = [
    "DEFAULT_EPSILONS",
    "DEFAULT_LAMS",
    "DEFAULT_TREE_LAMS",
    "plot_tradeoff",
    "run_tradeoff",
]

#: λ grid for MID linear regression (λ is dimensionless: squared error in units of Var(y)).
DEFAULT_LAMS: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: λ grid for MID trees (λ weighs nats of H(Ŷ) against nats of information gain).
DEFAULT_TREE_LAMS: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.1, 0.3)
#: ε grid (Fredrikson et al. 2014 evaluated ε in {0.25, 1, 5, 20, 100}).
DEFAULT_EPSILONS: tuple[float, ...] = (0.25, 1.0, 5.0, 20.0, 100.0)

_TASKS = ("regression", "tree")


def _check_grid(name: str, values: Sequence[float], *, positive: bool) -> tuple[float, ...]:
    out = []
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (positive and v <= 0) or (not positive and v < 0):
            want = "> 0" if positive else ">= 0"
            raise ConfigError(f"every {name} value must be a finite float {want}. Got {v!r}")
        out.append(float(v))
    return tuple(out)


def _models(
    task: str,
    lams: Sequence[float],
    epsilons: Sequence[float],
    *,
    seed: int,
    device: str,
    max_depth: int,
    with_dpsgd: bool,
) -> list[tuple[str, float | None, Callable[[], Any]]]:
    """``(defense, param, factory)`` for every point of the sweep, for one split's seed."""
    if task == "regression":
        from invbench.tabular.dp_linear import (
            DPSGDLinearRegression,
            FunctionalMechanismLinearRegression,
        )
        from invbench.tabular.mid_linear import MIDLinearRegression

        out: list[tuple[str, float | None, Callable[[], Any]]] = [
            ("none", None, lambda: MIDLinearRegression(lam=0.0))
        ]
        out += [("mid", lam, lambda lam=lam: MIDLinearRegression(lam=lam)) for lam in lams]
        out += [
            ("dp-functional", e,
             lambda e=e: FunctionalMechanismLinearRegression(epsilon=e, random_state=seed))
            for e in epsilons
        ]
        if with_dpsgd:
            out += [
                ("dp-sgd", e,
                 lambda e=e: DPSGDLinearRegression(epsilon=e, random_state=seed, device=device))
                for e in epsilons
            ]
        return out
    from invbench.tabular.dp_tree import DPID3Classifier
    from invbench.tabular.mid_tree import MIDDecisionTreeClassifier

    out = [("none", None, lambda: MIDDecisionTreeClassifier(lam=0.0, max_depth=max_depth))]
    out += [
        ("mid", lam, lambda lam=lam: MIDDecisionTreeClassifier(lam=lam, max_depth=max_depth))
        for lam in lams
    ]
    out += [
        ("dp-id3", e,
         lambda e=e: DPID3Classifier(epsilon=e, max_depth=max_depth, random_state=seed))
        for e in epsilons
    ]
    return out


def _attack(task: str, tree_attack: str) -> Any:
    if task == "regression":
        from invbench.tabular.map_linear import MAPLinearAttack

        return MAPLinearAttack()
    from invbench.tabular.map_tree import MAPTreeAttack

    return MAPTreeAttack(mode=tree_attack)


def run_tradeoff(
    data: TabularData,
    *,
    task: str = "regression",
    lams: Sequence[float] | None = None,
    epsilons: Sequence[float] | None = None,
    seed: int = 0,
    repeats: int = 3,
    test_fraction: float = 0.25,
    max_depth: int = 5,
    tree_attack: str = "white-box",
    device: str = "cpu",
    quiet: bool = False,
) -> dict[str, Any]:
    """Sweep MID's λ and the DP baselines' ε; return the issue's JSON-shaped result.

    Args:
        data: the dataset (see :mod:`invbench.tabular.data`).
        task: ``"regression"`` (linear models on ``y``) or ``"tree"`` (ID3 trees on
            ``y_class``).
        lams: MID λ values (>= 0); default :data:`DEFAULT_LAMS` / :data:`DEFAULT_TREE_LAMS`.
        epsilons: DP ε values (> 0); default :data:`DEFAULT_EPSILONS`.
        seed: split ``r`` uses seed ``seed + r`` for the split and the mechanisms' noise.
        repeats: number of random splits averaged (>= 1).
        test_fraction: held-out share of each split.
        max_depth: tree depth (``task="tree"``).
        tree_attack: ``"white-box"`` or ``"black-box"`` MAP tree attack.
        device: torch device for DP-SGD.
        quiet: no progress bar or logs.

    Returns:
        ``{"dataset", "sensitive", "task", "baseline", "points": [{"defense", "param",
        "utility", "utility_metric", "attack_acc_train", "attack_acc_test",
        "attack_f1_train", "attack_f1_test"}, ...]}`` (``param`` is ``None`` for
        ``"none"``; points in sweep order).

    Example:
        >>> from invbench.tabular.data import synthetic_warfarin
        >>> res = run_tradeoff(synthetic_warfarin(n=600), lams=[1.0], epsilons=[10.0],
        ...                    repeats=1, quiet=True)  # doctest: +SKIP
        >>> [p["defense"] for p in res["points"]]  # doctest: +SKIP
        ['none', 'mid', 'dp-functional', 'dp-sgd']
    """
    task = check_param("run_tradeoff", "task", task, kind="str", options=_TASKS)
    repeats = check_param("run_tradeoff", "repeats", repeats, kind="int", low=1)
    seed = check_param("run_tradeoff", "seed", seed, kind="int", low=0)
    tree_attack = check_param("run_tradeoff", "tree_attack", tree_attack, kind="str",
                              options=("white-box", "black-box"))
    check_param("run_tradeoff", "test_fraction", test_fraction, kind="float", low=0.0,
                high=1.0, low_inclusive=False, high_inclusive=False)
    default_lams = DEFAULT_LAMS if task == "regression" else DEFAULT_TREE_LAMS
    lam_grid = _check_grid("lam", default_lams if lams is None else lams, positive=False)
    eps_grid = _check_grid("eps", DEFAULT_EPSILONS if epsilons is None else epsilons,
                           positive=True)
    with_dpsgd = task == "regression" and importlib.util.find_spec("opacus") is not None
    if task == "regression" and not with_dpsgd:
        log("dp-sgd skipped: it needs opacus (pip install 'invbench[dp]')", quiet=quiet)

    sums: dict[tuple[str, float | None], np.ndarray] = {}
    order: list[tuple[str, float | None]] = []
    baselines: list[float] = []
    metric = "mse" if task == "regression" else "f1"
    n_points = len(_models(task, lam_grid, eps_grid, seed=seed, device=device,
                           max_depth=max_depth, with_dpsgd=with_dpsgd))
    with progress_bar(repeats * n_points, f"tabular {task} trade-off", quiet=quiet) as bar:
        for r in range(repeats):
            train, test = data.train_test_split(test_fraction=test_fraction, seed=seed + r)
            baselines.append(majority_baseline(train.s, test.s))
            target_tr = train.y if task == "regression" else train.y_class
            for defense, param, factory in _models(
                task, lam_grid, eps_grid, seed=seed + r, device=device, max_depth=max_depth,
                with_dpsgd=with_dpsgd,
            ):
                model = factory().fit(train.X, target_tr)
                util, _ = utility(
                    model, test.X, test.y if task == "regression" else test.y_class, task=task
                )
                attack = _attack(task, tree_attack).fit(model, train)
                s_tr = attack_scores(train.s, attack.infer(model, train))
                s_te = attack_scores(test.s, attack.infer(model, test))
                key = (defense, param)
                if key not in sums:
                    sums[key] = np.zeros(5)
                    order.append(key)
                sums[key] += [util, s_tr["acc"], s_te["acc"], s_tr["f1"], s_te["f1"]]
                bar.advance()
                bar.update(split=r, defense=defense)
    points = []
    for defense, param in order:
        m = sums[(defense, param)] / repeats
        points.append({
            "defense": defense,
            "param": param,
            "utility": float(m[0]),
            "utility_metric": metric,
            "attack_acc_train": float(m[1]),
            "attack_acc_test": float(m[2]),
            "attack_f1_train": float(m[3]),
            "attack_f1_test": float(m[4]),
        })
    return {
        "dataset": data.name,
        "sensitive": data.sensitive,
        "task": task,
        "baseline": float(np.mean(baselines)),
        "points": points,
    }


def plot_tradeoff(result: Mapping[str, Any], path: str | Path) -> Path:
    """Write the trade-off plot of a :func:`run_tradeoff` result to ``path`` (PNG/SVG/PDF).

    One curve per defense and split (``"mid (train)"``, ``"mid (test)"``, ...): x = the
    model's utility (test MSE or F1), y = attack accuracy; the majority baseline dashed.
    Like Figure 2(a)(b) of the MID paper.

    Example:
        >>> plot_tradeoff(result, "runs/tabular/iwpc-vkorc1-regression.png")  # doctest: +SKIP
    """
    from invbench.report.plots import tradeoff_plot

    curves: dict[str, list[tuple[float, float]]] = {}
    for split in ("train", "test"):
        for p in result["points"]:
            label = f"{p['defense']} ({split})"
            curves.setdefault(label, []).append(
                (float(p["utility"]), float(p[f"attack_acc_{split}"]))
            )
    metric = result["points"][0]["utility_metric"] if result["points"] else "utility"
    xlabel = "model MSE (test)" if metric == "mse" else "model macro F1 (test)"
    return tradeoff_plot(
        path,
        curves,
        xlabel=xlabel,
        ylabel=f"attack accuracy on {result['sensitive']}",
        title=f"{result['dataset']}: {result['task']} ({result['sensitive']})",
        baseline=float(result["baseline"]),
        baseline_label="majority baseline",
    )
