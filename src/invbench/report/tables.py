"""Terminal tables (rich) for benchmark results and for the runs in the store.

Accuracies are fractions in ``[0, 1]`` in the data and percentages on screen; a missing value
prints as ``-`` rather than a made-up number.

Example::

    from rich.console import Console
    Console().print(results_table([result_json_1, result_json_2]))
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

MISSING = "-"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def fmt_pct(value: Any, std: Any = None) -> str:
    """``0.625 -> "62.5%"``; with a std ``"62.5 ± 3.1%"``; non-numbers -> ``"-"``."""
    v = _num(value)
    if v is None:
        return MISSING
    s = _num(std)
    if s is None:
        return f"{100 * v:.1f}%"
    return f"{100 * v:.1f} ± {100 * s:.1f}%"


def fmt_float(value: Any, *, digits: int = 2) -> str:
    """A plain number with ``digits`` decimals (``"-"`` when missing)."""
    v = _num(value)
    return MISSING if v is None else f"{v:.{digits}f}"


def fmt_int(value: Any) -> str:
    """An integer with thousands separators (``"-"`` when missing)."""
    v = _num(value)
    return MISSING if v is None else f"{round(v):,}"


def _fmt_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt_param(v) for v in value) + "]"
    return str(value)


def fmt_method(name: Any, params: Mapping[str, Any] | None = None) -> str:
    """``("mid", {"beta": 0.01}) -> "mid(beta=0.01)"``; accepts ``{"name":..., "params":...}``."""
    if isinstance(name, Mapping):
        params = name.get("params", params)
        name = name.get("name", MISSING)
    if name is None:
        return MISSING
    if not params:
        return str(name)
    inner = ", ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(params.items()))
    return f"{name}({inner})"


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


#: the metric columns of :func:`results_table` when none are asked for
DEFAULT_COLUMNS: tuple[str, ...] = ("success", "acc1", "knn_dist", "fid")

#: how a metric key is shown in a column header
_HEADERS = {
    "success": "success",
    "acc1": "acc1",
    "acc5": "acc5",
    "knn_dist": "KNN dist",
    "knn_pixel_dist": "KNN pix",
    "feat_dist": "feat dist",
    "fid": "FID",
    "kid": "KID",
    "ensemble_acc1": "ens acc1",
}


def _is_fraction(key: str) -> bool:
    return key in {"success", "success_lo", "success_hi", "agreement", "precision", "recall",
                   "coverage"} or key.startswith(("acc1", "acc5", "ensemble_acc1"))


def fmt_metric(key: str, m: Mapping[str, Any]) -> str:
    """One metric of a result's ``metrics`` for a table cell.

    Rates print as percentages (``success`` with its Wilson interval, ``acc1`` with its std over
    classes); distances, FID and the like as plain numbers; a missing or undefined value as ``-``.
    """
    value = m.get(key)
    if key == "success" and _num(value) is not None:
        lo, hi = _num(m.get("success_lo")), _num(m.get("success_hi"))
        if lo is not None and hi is not None:
            return f"{100 * float(value):.0f}% [{100 * lo:.0f}-{100 * hi:.0f}]"
    if _is_fraction(key):
        return fmt_pct(value, m.get(f"{key}_std"))
    if key in {"kid"}:
        return fmt_float(value, digits=4)
    return fmt_float(value)


def results_table(
    results: Sequence[Mapping[str, Any]],
    *,
    title: str | None = None,
    metrics: Sequence[str] | None = None,
) -> Table:
    """One row per benchmark result (the CLI's ``--json`` objects).

    Columns: defense (with params), attack (with params), target accuracy, then the metric
    columns — by default ``success`` (with its 95% interval), ``acc1``, ``knn_dist`` and
    ``fid``; ``metrics`` picks others — then ``success`` of the three references: real held-out
    private images ("real"), uniform noise ("noise") and adversarial noise made on the target
    ("adv"), which bracket what a perfect, a useless and a fooling attack would score; the
    number of warnings; queries and seconds. A failed cell shows its status in place of numbers.
    A dataset (seed) column is added when the results span several datasets (seeds).

    Example::

        Console().print(results_table(json.loads(Path("results.json").read_text())))
    """
    cols = list(metrics) if metrics else list(DEFAULT_COLUMNS)
    many_datasets = len({str(r.get("dataset")) for r in results}) > 1
    many_seeds = len({str(r.get("seed")) for r in results}) > 1
    table = Table(title=title, header_style="bold")
    if many_datasets:
        table.add_column("dataset")
    table.add_column("defense")
    table.add_column("attack")
    if many_seeds:
        table.add_column("seed", justify="right")
    headers = ["target acc", *(_HEADERS.get(c, c) for c in cols),
               "real success", "noise success", "adv success", "warn", "queries", "seconds"]
    for col in headers:
        table.add_column(col, justify="right")
    for r in results:
        m = r.get("metrics") or {}
        refs = r.get("references") or {}
        row: list[str] = []
        if many_datasets:
            row.append(str(r.get("dataset", MISSING)))
        # "*_label" (set by the runner) names only the parameters that differ from defaults.
        row.append(str(r.get("defense_label") or fmt_method(r.get("defense"),
                                                            r.get("defense_params"))))
        row.append(str(r.get("attack_label") or fmt_method(r.get("attack"),
                                                           r.get("attack_params"))))
        if many_seeds:
            row.append(str(r.get("seed", MISSING)))
        if r.get("status") == "failed":
            row.append("[red]failed[/red]")
            row += [MISSING] * (len(headers) - 3)
            row += [fmt_float(r.get("seconds"), digits=1)]
            table.add_row(*row)
            continue
        row.append(fmt_pct(r.get("target_accuracy")))
        row += [fmt_metric(c, m) for c in cols]
        for ref in ("private_test", "noise", "adversarial"):
            row.append(fmt_pct(_get(refs, ref, "success")))
        n_warn = len(r.get("warnings") or [])
        row.append(f"[yellow]{n_warn}[/yellow]" if n_warn else "0")
        row += [fmt_int(r.get("queries")), fmt_float(r.get("seconds"), digits=1)]
        table.add_row(*row)
    return table


#: the columns of :func:`updates_table`: (metric key, header, format)
UPDATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("label_acc", "label acc"), ("label_kl", "label KL"), ("label_l1", "label L1"),
    ("update_mse", "sample MSE"), ("update_ssim", "sample SSIM"),
    ("update_agreement", "eval agrees"),
)


def updates_table(results: Sequence[Mapping[str, Any]], *, title: str | None = None) -> Table:
    """One row per result of an attack on a model's updates (``kind: "update"``).

    Columns: defense, attack, target accuracy, updates x their size, then each score of
    :mod:`invbench.metrics.updates` as ``attack (baseline)`` — the baseline being what
    guessing without a query scores (uniform labels, the mean public image) — queries and
    seconds. Scores a variant does not produce (a labels-only attack's sample MSE) are ``-``.
    """
    table = Table(title=title, header_style="bold")
    for col in ("defense", "attack"):
        table.add_column(col)
    for col in ("target acc", "updates", *(h for _, h in UPDATE_COLUMNS), "queries",
                "seconds"):
        table.add_column(col, justify="right")
    for r in results:
        row = [str(r.get("defense_label") or r.get("defense") or MISSING),
               str(r.get("attack_label") or r.get("attack") or MISSING)]
        if r.get("status") == "failed":
            row += ["[red]failed[/red]"] + [MISSING] * (len(UPDATE_COLUMNS) + 2)
            row.append(fmt_float(r.get("seconds"), digits=1))
            table.add_row(*row)
            continue
        m = r.get("metrics") or {}
        base = (r.get("references") or {}).get("baseline") or {}
        row += [fmt_pct(r.get("target_accuracy")),
                f"{fmt_int(r.get('updates'))} x {fmt_int(r.get('update_size'))}"]
        for key, _ in UPDATE_COLUMNS:
            value, ref = _num(m.get(key)), _num(base.get(key))
            if value is None:
                row.append(MISSING)
                continue
            digits = 4 if key == "update_mse" else 2
            row.append(f"{value:.{digits}f} ({ref:.{digits}f})" if ref is not None
                       else f"{value:.{digits}f}")
        row += [fmt_int(r.get("queries")), fmt_float(r.get("seconds"), digits=1)]
        table.add_row(*row)
    return table


def result_warnings(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """The distinct warnings of the results, each once, prefixed with the target it concerns."""
    seen: dict[str, None] = {}
    for r in results:
        who = str(r.get("defense_label") or r.get("defense") or MISSING)
        for w in r.get("warnings") or []:
            seen.setdefault(f"{who}: {w}", None)
    return list(seen)


def _first(*values: Any) -> Any:
    for v in values:
        if v is not None:
            return v
    return None


def runs_table(rows: Sequence[Mapping[str, Any]], *, title: str | None = None) -> Table:
    """A table of stored runs (the dicts of :meth:`invbench.bench.store.Store.runs`).

    Columns: id, kind, status, dataset, defense, attack, utility (the target's accuracy for
    benchmark runs; MSE or F1 for tabular runs), ``success`` (the headline metric of
    inversion cells), attack accuracy (acc1 ± std; for tabular runs the MAP attack's accuracy
    on held-out records), KNN distance, seconds, creation time; and, when a row carries
    ``"human"`` (its cell's :func:`invbench.metrics.human.human_rates` entry, added by
    ``invbench runs``), the human success rate with its 95% interval and answer count, and the
    automatic ``success`` decision's false-positive / false-negative rate against people.
    Names come from the result payload, else from the spec; metrics from the stored metrics
    (``attack.acc1``...), else from the payload.
    """
    judged = any(run.get("human") for run in rows)
    table = Table(title=title, header_style="bold")
    table.add_column("id", justify="right")
    for col in ("kind", "status", "dataset", "defense", "attack"):
        table.add_column(col)
    for col in ("utility", "success", "attack acc", "KNN dist", "seconds"):
        table.add_column(col, justify="right")
    if judged:
        table.add_column("human success", justify="right")
        table.add_column("success FP / FN vs people", justify="right")
    table.add_column("created")
    for run in rows:
        res = run.get("result") or {}
        spec = run.get("spec") or {}
        met = run.get("metrics") or {}
        status = str(run.get("status", MISSING))
        if run.get("kind") == "tabular":
            defense = str(_first(res.get("defense"), spec.get("defense"), MISSING))
            param = _first(res.get("param"), spec.get("param"))
            if param is not None:
                defense += f"({_fmt_param(param)})"
            attack = {"regression": "map-linear", "tree": "map-tree"}.get(
                str(spec.get("task")), MISSING
            )
            metric = res.get("utility_metric")
            value = res.get("utility")
            utility = (
                fmt_pct(value) if metric == "f1" else f"{metric} {fmt_float(value)}"
                if metric else MISSING
            )
            attack_acc = fmt_pct(_first(met.get("attack.acc_test"), res.get("attack_acc_test")))
            success = MISSING
        else:
            defense = str(
                res.get("defense_label") or fmt_method(
                    _first(res.get("defense"), spec.get("defense")),
                    _first(res.get("defense_params"), spec.get("defense_params")),
                )
            )
            attack = str(
                res.get("attack_label") or fmt_method(
                    _first(res.get("attack"), spec.get("attack")),
                    _first(res.get("attack_params"), spec.get("attack_params")),
                )
            )
            utility = fmt_pct(_first(met.get("target.accuracy"), res.get("target_accuracy")))
            attack_acc = fmt_pct(
                _first(met.get("attack.acc1"), _get(res, "metrics", "acc1")),
                _first(met.get("attack.acc1_std"), _get(res, "metrics", "acc1_std")),
            )
            success = fmt_float(_first(met.get("attack.success"),
                                       _get(res, "metrics", "success")))
        extra = ([_human_cell(run.get("human")), _agreement_cell(run.get("human"))]
                 if judged else [])
        table.add_row(
            str(run.get("id", MISSING)),
            str(run.get("kind", MISSING)),
            f"[red]{status}[/red]" if status == "failed" else status,
            str(_first(res.get("dataset"), spec.get("dataset"), MISSING)),
            defense,
            attack,
            utility,
            success,
            attack_acc,
            fmt_float(_first(met.get("attack.knn_dist"), _get(res, "metrics", "knn_dist"))),
            fmt_float(run.get("seconds"), digits=1),
            str(run.get("created", MISSING)).replace("T", " ").removesuffix("+00:00"),
            *extra,
        )
    return table


def fmt_rate(rate: Mapping[str, Any]) -> str:
    """``"62% [41-79]"`` from a rate dict (``{"rate", "lo", "hi"}``, e.g.
    :meth:`invbench.metrics.human.Rate.to_dict`); ``-`` without a rate."""
    r, lo, hi = rate.get("rate"), rate.get("lo"), rate.get("hi")
    if r is None:
        return MISSING
    if lo is None or hi is None:
        return f"{100 * r:.0f}%"
    return f"{100 * r:.0f}% [{100 * lo:.0f}-{100 * hi:.0f}]"


def fmt_ratio(rate: float | None, k: int, n: int) -> str:
    """``"25% (1/4)"``; ``-`` when ``rate`` is ``None``."""
    return MISSING if rate is None else f"{100 * rate:.0f}% ({k}/{n})"


def _agreement_cell(human: Mapping[str, Any] | None) -> str:
    """The automatic ``success`` decision against people: false-positive rate (of the images
    people said no to) / false-negative rate (of those they said yes to)."""
    d = ((human or {}).get("decisions") or {}).get("success")
    if not d:
        return MISSING
    fp = fmt_ratio(d["fp_rate"], d["fp"], d["no"])
    return f"{fp} / {fmt_ratio(d['fn_rate'], d['fn'], d['yes'])}"


def _human_cell(human: Mapping[str, Any] | None) -> str:
    """``"62% [41-79] n=21"`` from a cell's human rates, ``-`` when nobody judged it."""
    rate = (human or {}).get("success") or {}
    return f"{fmt_rate(rate)} n={rate['n']}" if rate.get("n") else MISSING


def fisher_table(report: Mapping[str, Any], *, title: str | None = None) -> Table:
    """The per-layer Fisher table of ``invbench analyze fisher`` (its ``to_dict()`` form).

    Columns: layer, parameters, the mean Fisher information per parameter of the
    classification and inversion tasks, their ratio, and each task's share per layer.
    """
    table = Table(title=title, header_style="bold")
    table.add_column("layer")
    table.add_column("params", justify="right")
    for col in ("F classification", "F inversion", "inv / cls", "cls share", "inv share"):
        table.add_column(col, justify="right")
    for row in report.get("layers", []):
        table.add_row(
            str(row["layer"]),
            fmt_int(row["parameters"]),
            f"{row['classification']:.3g}",
            f"{row['inversion']:.3g}",
            MISSING if row.get("ratio") is None else f"{row['ratio']:.2f}",
            fmt_pct(row["classification_share"]),
            fmt_pct(row["inversion_share"]),
        )
    return table


def _run_names(run: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """A stored run's dataset, defense name and attack name (payload first, then spec)."""
    res, spec = run.get("result") or {}, run.get("spec") or {}
    cell = spec.get("cell") or {}
    return (
        _first(res.get("dataset"), spec.get("dataset"), cell.get("dataset")),
        _first(res.get("defense"), spec.get("defense")),
        _first(res.get("attack"), spec.get("attack")),
    )


def filter_runs(
    rows: Sequence[Mapping[str, Any]],
    *,
    dataset: str | None = None,
    attack: str | None = None,
    defense: str | None = None,
    status: str | None = None,
) -> list[Mapping[str, Any]]:
    """The runs matching every given filter (``None``: any); names are method names."""
    out = []
    for run in rows:
        ds, de, at = _run_names(run)
        if dataset is not None and ds != dataset:
            continue
        if defense is not None and de != defense:
            continue
        if attack is not None and at != attack:
            continue
        if status is not None and run.get("status") != status:
            continue
        out.append(run)
    return out


#: the columns of :func:`runs_csv`, in order
CSV_COLUMNS = ("id", "kind", "status", "dataset", "defense", "defense_label", "attack",
               "attack_label", "seed", "target_accuracy", "success", "success_lo",
               "success_hi", "acc1", "knn_dist", "fid", "human_success", "human_lo",
               "human_hi", "human_n", "success_fp_rate", "success_fn_rate", "queries",
               "seconds", "created", "error")


def runs_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """The runs as CSV text (header + one line per run; empty cells for missing values)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for run in rows:
        res = run.get("result") or {}
        met = res.get("metrics") or {}
        ds, de, at = _run_names(run)
        human = (run.get("human") or {}).get("success") or {}
        agree = ((run.get("human") or {}).get("decisions") or {}).get("success") or {}
        values = {
            "id": run.get("id"), "kind": run.get("kind"), "status": run.get("status"),
            "dataset": ds, "defense": de, "defense_label": res.get("defense_label"),
            "attack": at, "attack_label": res.get("attack_label"), "seed": res.get("seed"),
            "target_accuracy": res.get("target_accuracy"),
            **{k: met.get(k) for k in ("success", "success_lo", "success_hi", "acc1",
                                       "knn_dist", "fid")},
            **{f"human_{k if k != 'rate' else 'success'}": human.get(k)
               for k in ("rate", "lo", "hi", "n")},
            "success_fp_rate": agree.get("fp_rate"), "success_fn_rate": agree.get("fn_rate"),
            "queries": res.get("queries"), "seconds": run.get("seconds"),
            "created": run.get("created"), "error": res.get("error"),
        }
        w.writerow(["" if values[c] is None else values[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def _ci(ci: Any, *, pct: bool = False) -> str:
    if not ci:
        return ""
    lo, hi = ci
    return f" [{lo:.1%}, {hi:.1%}]" if pct else f" [{lo:.2f}, {hi:.2f}]"


def tradeoff_tables(curves: Sequence[Any]) -> list[Table]:
    """Two tables per curve (:class:`invbench.analysis.tradeoff.Curve`): its points, and each
    defense's scalars (metric at 1/3/5 points of accuracy loss, area under the curve)."""
    tables = []
    for c in curves:
        t = Table(title=f"{c.dataset}: {c.attack} ({c.metric}; * on the Pareto front)",
                  title_justify="left", header_style="bold")
        for col in ("defense", "seeds", "target accuracy", c.metric, "interval"):
            t.add_column(col, justify="left" if col in ("defense", "interval") else "right")
        points = ([c.baseline] if c.baseline is not None else []) + [
            p for pts in c.defenses.values() for p in pts]
        for p in points:
            t.add_row(("* " if p.pareto else "  ") + p.label, str(len(p.seeds)),
                      f"{p.accuracy:.1%}{_ci(p.accuracy_ci, pct=True)}",
                      f"{p.value:.2f}{_ci(p.value_ci)}", p.interval)
        tables.append(t)
        if c.at_loss:
            s = Table(title=f"{c.dataset}: {c.attack}: {c.metric} at matched utility "
                      "(undefended accuracy minus 1/3/5 points) and area under the curve",
                      title_justify="left", header_style="bold")
            s.add_column("defense")
            for col in ("-1 pt", "-3 pts", "-5 pts", "AUC", "AUC / width"):
                s.add_column(col, justify="right")
            for name, at in c.at_loss.items():
                s.add_row(name, *(fmt_float(at.get(k)) for k in ("1", "3", "5")),
                          fmt_float(c.auc.get(name), digits=4),
                          fmt_float(c.auc_mean.get(name)))
            tables.append(s)
    return tables


def correlation_table(corrs: Sequence[Any]) -> Table:
    """Spearman's rho of target accuracy and an attack metric, per dataset and attack
    (:class:`invbench.analysis.tradeoff.Correlation`)."""
    t = Table(title="attack metric against target accuracy (Spearman rank correlation)",
              title_justify="left", header_style="bold")
    for col in ("dataset", "attack", "metric", "cells", "rho", "p", "accuracy range"):
        t.add_column(col, justify="right" if col in ("cells", "rho", "p") else "left")
    for c in corrs:
        accs = [a for a, _, _ in c.points]
        t.add_row(c.dataset, c.attack, c.metric, str(c.n),
                  MISSING if c.spearman is None else f"{c.spearman:+.2f}",
                  MISSING if c.p_value is None else f"{c.p_value:.3f}",
                  f"{min(accs):.1%} - {max(accs):.1%}" if accs else MISSING)
    return t
