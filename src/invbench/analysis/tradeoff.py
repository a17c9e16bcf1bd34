"""Privacy-utility analysis of a benchmark's stored cells (a sweep's, or several runs').

For each dataset and attack, every defense is a curve: its strengths are points of (target
accuracy, attack metric), each the mean over the seeds the store holds, with a 95% interval:

- three or more seeds: Student's t interval of the mean over seeds (``interval: "seeds"``);
- fewer: a percentile bootstrap over the reconstructions, pooled over the seeds there are
  (``interval: "bootstrap"``; 2,000 resamples, seeded), for metrics with a per-image value
  (``success``: ``img_success``; ``acc1``: the standard evaluator's label) — otherwise none.

Across defenses: the Pareto front (no other point has both higher accuracy and a lower
metric). Per defense, two scalars, both on its curve joined to the undefended point:

- ``at_loss``: the metric interpolated linearly at the undefended accuracy minus 1, 3 and 5
  points (``None`` where the curve does not reach that accuracy);
- ``auc``: the trapezoid area under the metric over target accuracy from the curve's lowest
  accuracy to the undefended one, and ``auc_mean`` = that area over the width (the mean
  metric over the accuracy the defense spans).

And MIBench's observation that attacks succeed more against more accurate targets
(:func:`accuracy_vs_success`): the Spearman rank correlation between target accuracy and
the metric over the undefended cells of each attack (e.g. a sweep over ``train.arch`` and
``train.epochs``).

Example::

    rows = Store("runs/sweep/invbench.sqlite").runs(kind="benchmark")
    curves = tradeoff(rows)                 # one entry per (dataset, attack)
    rhos = accuracy_vs_success(rows)        # Spearman's rho per attack

Figures: :func:`invbench.report.plots.curve_plot`, ``correlation_plot``,
``tradeoff_figures``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from invbench.errors import ConfigError
from invbench.metrics.base import is_rate

#: accuracy losses (points) at which each defense's metric is interpolated
LOSSES = (1.0, 3.0, 5.0)
#: bootstrap resamples of the reconstructions (fewer than three seeds)
BOOTSTRAP = 2000
#: seeds from which the interval is over seeds rather than a bootstrap
MIN_SEEDS = 3


@dataclass
class Point:
    """One defense strength: the mean over seeds of accuracy and metric, with intervals."""

    defense: str
    label: str
    seeds: list[int]
    accuracy: float
    accuracy_ci: tuple[float, float] | None
    value: float
    value_ci: tuple[float, float] | None
    interval: str
    pareto: bool = False
    #: the defense's parameters that vary along its curve as ``k=v, ...`` (``""`` for the
    #: undefended target)
    strength: str = ""
    params: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass
class Curve:
    """One (dataset, attack): the undefended point, each defense's points and scalars."""

    dataset: str
    attack: str
    metric: str
    baseline: Point | None
    defenses: dict[str, list[Point]] = field(default_factory=dict)
    at_loss: dict[str, dict[str, float | None]] = field(default_factory=dict)
    auc: dict[str, float | None] = field(default_factory=dict)
    auc_mean: dict[str, float | None] = field(default_factory=dict)
    front: list[Point] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def inversion_cells(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The finished inversion cells of ``Store.runs`` rows: result payloads + artifacts."""
    out = []
    for r in rows:
        res = r.get("result") or {}
        if r.get("status") != "done" or res.get("kind", "inversion") != "inversion":
            continue
        if res.get("target_accuracy") is None or not res.get("metrics"):
            continue
        out.append({**res, "artifacts": r.get("artifacts") or res.get("artifacts") or {}})
    return out


def _t_interval(values: Sequence[float], *, clip: bool = True) -> tuple[float, float] | None:
    """Student's t 95% interval of the mean (clipped to [0, 1]: rates and accuracies)."""
    from scipy import stats

    n = len(values)
    if n < 2:
        return None
    m, s = float(np.mean(values)), float(np.std(values, ddof=1))
    h = float(stats.t.ppf(0.975, n - 1)) * s / math.sqrt(n)
    return (max(m - h, 0.0), min(m + h, 1.0)) if clip else (m - h, m + h)


def per_image(cell: Mapping[str, Any], metric: str) -> np.ndarray | None:
    """A cell's per-image values of ``metric`` from its reconstructions file, if it has them.

    ``success``: ``img_success``; ``acc1``: whether the standard evaluator (the first
    ``img_pred_*``) gives the claimed label. ``None`` for other metrics or a missing file.
    """
    path = (cell.get("artifacts") or {}).get("reconstructions")
    if not path or not Path(path).is_file() or metric not in ("success", "acc1"):
        return None
    from safetensors.torch import load_file

    t = load_file(path)
    if metric == "success":
        v = t.get("img_success")
        return None if v is None else v.float().numpy()
    preds = sorted(k for k in t if k.startswith("img_pred_"))
    if not preds:
        return None
    key = "img_pred_resnet" if "img_pred_resnet" in t else preds[0]
    return (t[key].long() == t["labels"].long()).float().numpy()


def _bootstrap(values: np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))
    means = values[idx].mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def _point(cells: list[dict[str, Any]], metric: str) -> Point | None:
    vals = [c["metrics"].get(metric) for c in cells]
    if any(v is None for v in vals):
        return None
    accs = [float(c["target_accuracy"]) for c in cells]
    seeds = sorted(int(c.get("seed", 0)) for c in cells)
    if len(cells) >= MIN_SEEDS:
        interval, value_ci = "seeds", _t_interval(vals, clip=is_rate(metric))
        acc_ci = _t_interval(accs)
    else:
        per = [per_image(c, metric) for c in cells]
        if all(p is not None and len(p) for p in per):
            interval = "bootstrap"
            value_ci = _bootstrap(np.concatenate(per))  # type: ignore[arg-type]
        else:
            interval, value_ci = "none", None
        acc_ci = _t_interval(accs)
    c0 = cells[0]
    return Point(defense=c0["defense"], label=c0.get("defense_label") or c0["defense"],
                 params=dict(c0.get("defense_params") or {}),
                 seeds=seeds, accuracy=float(np.mean(accs)), accuracy_ci=acc_ci,
                 value=float(np.mean(vals)), value_ci=value_ci, interval=interval)


def _name_strengths(points: Sequence[Point]) -> None:
    """Name each of one defense's points by the parameters that vary along its curve
    (``mid(beta=0.003)``, not every resolved default); a lone point keeps its run label."""
    keys = sorted({k for p in points for k in p.params})
    varying = [k for k in keys if len({repr(p.params.get(k)) for p in points}) > 1]
    for p in points:
        if not varying:
            p.strength = p.label[len(p.defense):].strip("()")
            continue
        p.strength = ", ".join(
            f"{k}={p.params.get(k):g}" if isinstance(p.params.get(k), float)
            else f"{k}={p.params.get(k)}" for k in varying)
        p.label = f"{p.defense}({p.strength})"


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both (higher accuracy, lower metric), by accuracy."""
    front = []
    for p in points:
        dominated = any(
            q is not p and q.accuracy >= p.accuracy and q.value <= p.value
            and (q.accuracy > p.accuracy or q.value < p.value) for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: p.accuracy)


def _interp_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """Linear interpolation of the piecewise curve (points sorted by x) at ``x``."""
    if not xs or x < xs[0] - 1e-12 or x > xs[-1] + 1e-12:
        return None
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True),
                                  strict=False):
        if x0 - 1e-12 <= x <= x1 + 1e-12:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[0] if len(xs) == 1 else None


def curve_scalars(baseline: Point, points: Sequence[Point]
                  ) -> tuple[dict[str, float | None], float | None, float | None]:
    """``at_loss`` (keys ``"1"``, ``"3"``, ``"5"``), ``auc`` and ``auc_mean`` of one defense.

    The curve is the defense's points and the undefended point, sorted by accuracy (the
    metric at a repeated accuracy is averaged).
    """
    by_x: dict[float, list[float]] = defaultdict(list)
    for p in [baseline, *points]:
        by_x[p.accuracy].append(p.value)
    xs = sorted(by_x)
    ys = [float(np.mean(by_x[x])) for x in xs]
    at = {f"{d:g}": _interp_at(xs, ys, baseline.accuracy - d / 100.0) for d in LOSSES}
    width = xs[-1] - xs[0]
    if len(xs) < 2 or width <= 0:
        return at, None, None
    area = float(np.trapezoid(ys, xs)) if hasattr(np, "trapezoid") else float(np.trapz(ys, xs))
    return at, area, area / width


def tradeoff(rows: Sequence[Mapping[str, Any]], *, metric: str = "success") -> list[Curve]:
    """Every (dataset, attack)'s curves; see the module docstring.

    Raises :class:`ConfigError` when no stored cell has ``metric``.
    """
    cells = inversion_cells(rows)
    if not any(metric in c["metrics"] for c in cells):
        known = sorted({k for c in cells for k in c["metrics"]})
        raise ConfigError(f"--metric '{metric}': no stored cell has it; the cells have: "
                          f"{', '.join(known) or 'no metrics (no finished cells)'}")
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    for c in cells:
        label = c.get("defense_label") or c["defense"]
        groups[(c["dataset"], c.get("attack_label") or c["attack"])][label].append(c)
    curves = []
    for (dataset, attack), by_label in sorted(groups.items()):
        points = [p for p in (_point(cs, metric) for cs in by_label.values()) if p is not None]
        base = next((p for p in points if p.defense == "none"), None)
        curve = Curve(dataset=dataset, attack=attack, metric=metric, baseline=base)
        for p in points:
            if p is not base:
                curve.defenses.setdefault(p.defense, []).append(p)
        for pts in curve.defenses.values():
            pts.sort(key=lambda p: -p.accuracy)
            _name_strengths(pts)
        curve.front = pareto_front(points)
        for p in curve.front:
            p.pareto = True
        if base is not None:
            for name, pts in curve.defenses.items():
                curve.at_loss[name], curve.auc[name], curve.auc_mean[name] = curve_scalars(
                    base, pts)
        curves.append(curve)
    return curves


@dataclass
class Correlation:
    """Target accuracy against an attack's metric over undefended cells (MIBench's claim)."""

    dataset: str
    attack: str
    metric: str
    n: int
    spearman: float | None
    p_value: float | None
    points: list[tuple[float, float, str]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _target_label(c: Mapping[str, Any], spec: Mapping[str, Any] | None) -> str:
    train = (spec or {}).get("train") or {}
    bits = [str(train.get("arch", "?")), f"{train.get('epochs', '?')} ep", f"seed {c.get('seed')}"]
    return ", ".join(bits)


def accuracy_vs_success(rows: Sequence[Mapping[str, Any]], *, metric: str = "success",
                        defense: str = "none") -> list[Correlation]:
    """Per (dataset, attack): Spearman's rank correlation of target accuracy and ``metric``.

    Over every finished cell of ``defense`` (default: the undefended targets, however they
    differ: architecture, epochs, seed). ``spearman`` is ``None`` with fewer than three cells
    or a constant column.
    """
    from scipy import stats

    groups: dict[tuple[str, str], list[tuple[float, float, str]]] = defaultdict(list)
    for r in rows:
        res = r.get("result") or {}
        if (r.get("status") != "done" or res.get("kind", "inversion") != "inversion"
                or res.get("defense") != defense):
            continue
        v = (res.get("metrics") or {}).get(metric)
        if v is None or res.get("target_accuracy") is None:
            continue
        groups[(res["dataset"], res.get("attack_label") or res["attack"])].append(
            (float(res["target_accuracy"]), float(v), _target_label(res, r.get("spec"))))
    out = []
    for (dataset, attack), pts in sorted(groups.items()):
        rho = p = None
        xs, ys = [a for a, _, _ in pts], [b for _, b, _ in pts]
        if len(pts) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1:
            res = stats.spearmanr(xs, ys)
            rho, p = float(res.statistic), float(res.pvalue)
        out.append(Correlation(dataset=dataset, attack=attack, metric=metric, n=len(pts),
                               spearman=rho, p_value=p, points=sorted(pts)))
    if not out:
        raise ConfigError(f"no finished '{defense}' cell with '{metric}' in the store")
    return out
