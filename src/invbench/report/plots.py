"""Privacy-utility trade-off plots and the Fisher-information plot (matplotlib, Agg).

The figure is drawn on its own ``FigureCanvasAgg``, so nothing here touches pyplot's global
state or the backend other code (or a notebook) has chosen.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from invbench._io import atomic_path
from invbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from invbench.analysis.fisher import FisherResult
    from invbench.analysis.tradeoff import Correlation, Curve

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def _figure(path: str | Path, width: float = 6.0) -> tuple[Path, str, Any]:
    """``(path, format, figure)``: a Figure on its own Agg canvas for ``path``'s format.

    Raises :class:`ConfigError` when the suffix is not a format matplotlib writes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    fig = Figure(figsize=(width, 4.2), dpi=120, layout="constrained")
    if fmt not in FigureCanvasAgg(fig).get_supported_filetypes():
        raise ConfigError(f"plot path {path} needs a suffix such as .png, .svg or .pdf")
    return path, fmt, fig


def _checked(label: Any, points: Sequence[tuple[float, float]]
             ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``(xs, ys)`` of one series; :class:`DataError` when it is empty or not finite."""
    pts = [(float(x), float(y)) for x, y in points]
    if not pts:
        raise DataError(f"curve '{label}' has no points")
    if not all(math.isfinite(v) for p in pts for v in p):
        raise DataError(f"curve '{label}' has a NaN or infinite point: {pts}")
    xs, ys = zip(*pts, strict=True)
    return xs, ys


def _save(fig: Any, ax: Any, path: Path, fmt: str, *, xlabel: str, ylabel: str,
          title: str) -> Path:
    """Label, grid and legend ``ax``, then write ``fig`` to ``path`` atomically."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
    return path


def tradeoff_plot(
    path: str | Path,
    curves: Mapping[str, Sequence[tuple[float, float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    baseline: float | None = None,
    baseline_label: str = "baseline",
    intervals: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    front: Sequence[tuple[float, float]] | None = None,
    notes: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Plot one line with markers per curve and write it to ``path`` (png, svg or pdf).

    Args:
        path: output file; the format comes from the suffix; written atomically.
        curves: ``{label: [(x, y), ...]}``, e.g. one curve per defense with points
            (target accuracy, attack accuracy) as its strength varies. Points are joined in
            the order given (e.g. increasing defense strength).
        xlabel, ylabel, title: axis labels and title.
        baseline: optional y value drawn as a dashed horizontal line (e.g. the attack
            accuracy on noise, or on the undefended model).
        baseline_label: legend text for the baseline.
        intervals: optional ``{label: [(lo, hi), ...]}``, one ``(lo, hi)`` per point of the
            curve of that label, drawn as vertical error bars (e.g. a 95% interval of
            ``success``).
        front: optional points of a Pareto front, drawn as a dotted black line.
        notes: optional ``{label: [text, ...]}``, one short text per point of that curve
            written beside it (e.g. the defense's strength); ``""`` writes nothing.

    Raises :class:`DataError` for empty curves or NaN/Inf points. Example::

        tradeoff_plot("tradeoff.png", {"mid": [(0.97, 0.8), (0.93, 0.5)]},
                      xlabel="target accuracy", ylabel="attack acc1", title="digits")
    """
    if not curves:
        raise DataError("tradeoff_plot got no curves to draw")
    path, fmt, fig = _figure(path)
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(curves.items()):
        xs, ys = _checked(label, points)
        line = ax.plot(xs, ys, marker=_MARKERS[i % len(_MARKERS)], linewidth=1.5,
                       label=str(label))[0]
        bars = (intervals or {}).get(label)
        if bars is not None:
            if len(bars) != len(xs):
                raise DataError(f"curve '{label}' has {len(xs)} points but {len(bars)} "
                                "intervals")
            lo = [y - float(b[0]) for y, b in zip(ys, bars, strict=True)]
            hi = [float(b[1]) - y for y, b in zip(ys, bars, strict=True)]
            if min(lo + hi) < -1e-9:
                raise DataError(f"curve '{label}': an interval does not contain its point")
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor=line.get_color(),
                        alpha=0.5, capsize=2)
        texts = (notes or {}).get(label)
        if texts is not None:
            if len(texts) != len(xs):
                raise DataError(f"curve '{label}' has {len(xs)} points but {len(texts)} notes")
            for x, y, text in zip(xs, ys, texts, strict=True):
                if text:
                    ax.annotate(str(text), (x, y), xytext=(4, 4), textcoords="offset points",
                                fontsize="x-small", color=line.get_color())
    if front:
        fx, fy = zip(*[(float(x), float(y)) for x, y in front], strict=True)
        ax.plot(fx, fy, color="black", linestyle=":", linewidth=1.2, label="Pareto front")
    if baseline is not None:
        if not math.isfinite(float(baseline)):
            raise DataError(f"baseline must be a finite number, got {baseline!r}")
        ax.axhline(float(baseline), color="grey", linestyle="--", linewidth=1.0,
                   label=baseline_label)
    return _save(fig, ax, path, fmt, xlabel=xlabel, ylabel=ylabel, title=title)


def fisher_plot(path: str | Path, result: FisherResult, *, title: str) -> Path:
    """Per-layer Fisher information of both tasks as grouped bars, written to ``path``.

    Left: the mean diagonal Fisher information per parameter (log scale); right: each
    layer's share of the task's total. ``result`` comes from
    :func:`invbench.analysis.fisher.fisher_analysis`.
    """
    from invbench.analysis.fisher import TASKS

    path, fmt, fig = _figure(path, width=10.0)
    names = [layer.name for layer in result.layers]
    xs = list(range(len(names)))
    width = 0.4
    labels = {
        "classification": f"classification (private, n={result.n_classification})",
        "inversion": f"inversion (reconstructions, n={result.n_inversion})",
    }
    left, right = fig.subplots(1, 2)
    for i, task in enumerate(TASKS):
        means = [getattr(layer, task) for layer in result.layers]
        if not all(math.isfinite(v) and v >= 0 for v in means):
            raise DataError(f"Fisher information of {task} has a NaN or negative value: {means}")
        offset = [x + (i - 0.5) * width for x in xs]
        left.bar(offset, [max(v, 1e-30) for v in means], width, label=labels[task])
        right.bar(offset, result.shares(task), width, label=labels[task])
    left.set_yscale("log")
    left.set_ylabel("mean Fisher information per parameter")
    right.set_ylabel("share of the task's Fisher information")
    for ax in (left, right):
        ax.set_xticks(xs, names, rotation=30, ha="right", fontsize="small")
        ax.set_xlabel("layer (block)")
        ax.grid(True, axis="y", alpha=0.3)
    left.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
    return path


def scatter_plot(
    path: str | Path,
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Path:
    """Points without lines, one marker per series (e.g. attack success vs target accuracy).

    Raises :class:`DataError` for no series, an empty series or a NaN/Inf point.
    """
    if not series:
        raise DataError("scatter_plot got no series to draw")
    path, fmt, fig = _figure(path)
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(series.items()):
        xs, ys = _checked(label, points)
        ax.scatter(xs, ys, marker=_MARKERS[i % len(_MARKERS)], label=str(label), alpha=0.8)
    return _save(fig, ax, path, fmt, xlabel=xlabel, ylabel=ylabel, title=title)


def curve_plot(path: str | Path, curve: Curve) -> Path:
    """One curve's figure: each defense's points with intervals joined in order of accuracy
    (through the undefended point), the undefended line, the Pareto front (dotted)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    bars: dict[str, list[tuple[float, float]]] = {}
    notes: dict[str, list[str]] = {}
    for name, pts in curve.defenses.items():
        # by accuracy, as the scalars read the curve (a noisy strength order would zig-zag)
        chain = sorted(([curve.baseline] if curve.baseline is not None else []) + list(pts),
                       key=lambda p: p.accuracy)
        curves[name] = [(p.accuracy, p.value) for p in chain]
        notes[name] = [p.strength.replace("lambda_", "λ").replace("beta", "β") for p in chain]
        if all(p.value_ci is not None for p in chain):
            bars[name] = [p.value_ci for p in chain]  # type: ignore[misc]
    if not curves and curve.baseline is not None:
        curves["none"] = [(curve.baseline.accuracy, curve.baseline.value)]
    seeds = max((len(p.seeds) for pts in curve.defenses.values() for p in pts), default=1)
    how = (f"mean of {seeds} seeds, 95% t interval" if seeds >= 3
           else "95% bootstrap interval over reconstructions")
    return tradeoff_plot(
        path, curves, xlabel="target accuracy (private test)",
        ylabel=f"{curve.metric} ({how})",
        title=f"{curve.dataset}: {curve.attack}",
        baseline=None if curve.baseline is None else curve.baseline.value,
        baseline_label="undefended", intervals=bars or None,
        front=[(p.accuracy, p.value) for p in curve.front], notes=notes,
    )


def correlation_plot(path: str | Path, corrs: Sequence[Correlation]) -> Path:
    """Target accuracy against the metric, one series per attack, rho in the legend."""
    series = {}
    for c in corrs:
        rho = "n/a" if c.spearman is None else f"{c.spearman:+.2f}"
        series[f"{c.attack} (rho {rho}, n={c.n})"] = [(a, b) for a, b, _ in c.points]
    return scatter_plot(path, series, xlabel="target accuracy (private test)",
                        ylabel=corrs[0].metric,
                        title=f"{corrs[0].dataset}: attack {corrs[0].metric} vs target accuracy")


def tradeoff_figures(rows: Sequence[Mapping[str, Any]], *, metric: str = "success"
                     ) -> list[tuple[str, bytes]]:
    """PNG bytes of every curve's figure (for the HTML report), titled "dataset: attack".

    Empty when the store has no finished inversion cell with ``metric``.
    """
    from invbench.analysis.tradeoff import tradeoff

    try:
        curves = tradeoff(rows, metric=metric)
    except (ConfigError, DataError):
        return []
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(curves):
            if c.baseline is None and not c.defenses:
                continue
            path = curve_plot(Path(tmp) / f"curve-{i}.png", c)
            out.append((f"{c.dataset}: {c.attack}", path.read_bytes()))
    return out
