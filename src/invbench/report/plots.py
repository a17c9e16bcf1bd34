"""Privacy-utility trade-off plots and the Fisher-information plot (matplotlib, Agg).

The figure is drawn on its own ``FigureCanvasAgg``, so nothing here touches pyplot's global
state or the backend other code (or a notebook) has chosen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from invbench._io import atomic_path
from invbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from invbench.analysis.fisher import FisherResult

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


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

    Raises :class:`DataError` for empty curves or NaN/Inf points. Example::

        tradeoff_plot("tradeoff.png", {"mid": [(0.97, 0.8), (0.93, 0.5)]},
                      xlabel="target accuracy", ylabel="attack acc1", title="digits")
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if not curves:
        raise DataError("tradeoff_plot got no curves to draw")
    fig = Figure(figsize=(6.0, 4.2), dpi=120, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    if fmt not in canvas.get_supported_filetypes():
        raise ConfigError(f"plot path {path} needs a suffix such as .png, .svg or .pdf")
    ax = fig.add_subplot()
    for i, (label, points) in enumerate(curves.items()):
        pts = [(float(x), float(y)) for x, y in points]
        if not pts:
            raise DataError(f"curve '{label}' has no points")
        if not all(math.isfinite(v) for p in pts for v in p):
            raise DataError(f"curve '{label}' has a NaN or infinite point: {pts}")
        xs, ys = zip(*pts, strict=True)
        line = ax.plot(xs, ys, marker=_MARKERS[i % len(_MARKERS)], linewidth=1.5,
                       label=str(label))[0]
        bars = (intervals or {}).get(label)
        if bars is not None:
            if len(bars) != len(pts):
                raise DataError(f"curve '{label}' has {len(pts)} points but {len(bars)} "
                                "intervals")
            lo = [y - float(b[0]) for y, b in zip(ys, bars, strict=True)]
            hi = [float(b[1]) - y for y, b in zip(ys, bars, strict=True)]
            if min(lo + hi) < -1e-9:
                raise DataError(f"curve '{label}': an interval does not contain its point")
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor=line.get_color(),
                        alpha=0.5, capsize=2)
    if baseline is not None:
        if not math.isfinite(float(baseline)):
            raise DataError(f"baseline must be a finite number, got {baseline!r}")
        ax.axhline(float(baseline), color="grey", linestyle="--", linewidth=1.0,
                   label=baseline_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt)
    return path


def fisher_plot(path: str | Path, result: FisherResult, *, title: str) -> Path:
    """Per-layer Fisher information of both tasks as grouped bars, written to ``path``.

    Left: the mean diagonal Fisher information per parameter (log scale); right: each
    layer's share of the task's total. ``result`` comes from
    :func:`invbench.analysis.fisher.fisher_analysis`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from invbench.analysis.fisher import TASKS

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    fig = Figure(figsize=(10.0, 4.2), dpi=120, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    if fmt not in canvas.get_supported_filetypes():
        raise ConfigError(f"plot path {path} needs a suffix such as .png, .svg or .pdf")
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
