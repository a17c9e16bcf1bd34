"""Privacy-utility curves of a run's defenses, per attack: a Markdown table, a PNG, JSON.

Reads the finished cells of a run's store (``invbench run --out DIR``), groups them by
attack, and for each attack writes ``DIR/curves-<attack>.png`` — target accuracy against
``success`` with its 95% interval, one line per defense over its strengths, the undefended
target's ``success`` as a dashed line — and prints a Markdown table (defense, strength,
target accuracy, accuracy loss, ``success`` [95% CI], acc1, knn_dist, queries) and,
per attack, the defense with the lowest ``success`` among those within ``--max-loss``
points of the undefended accuracy. ``--json`` prints the same as one JSON object.

Usage::

    python benchmarks/defense_curves.py --out DIR [--max-loss 3] [--json] [--png-dir D]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

#: the parameter(s) each defense is swept over (its "strength")
STRENGTH: dict[str, tuple[str, ...]] = {
    "mid": ("beta",), "bido": ("lambda_x", "lambda_y"), "tl-dmi": ("frozen",),
    "label-smoothing": ("alpha",), "random-erasing": ("scale_max",), "trap-mid": ("beta",),
    "dp-sgd": ("epsilon",),
}


def _strength(defense: str, params: dict[str, Any] | None, label: str) -> str:
    """``beta=0.003`` from the defense's parameters; ``-`` for the undefended target."""
    keys = STRENGTH.get(defense)
    if not keys or not params:
        m = re.fullmatch(r"[^(]+\((.*)\)", label)
        return m.group(1) if m else "-"
    return ", ".join(f"{k}={params.get(k)}" for k in keys)


def finished_runs(out: Path, *, script: str) -> list[dict[str, Any]]:
    """The finished benchmark runs of the store in ``out`` (``Store.runs`` rows).

    Shared by the benchmark scripts that read a run's store (``query_table.py``).
    """
    from invbench.bench.store import Store

    db = out / "invbench.sqlite"
    if not db.is_file():
        raise SystemExit(f"{script}: no store at '{db}'")
    store = Store(db)
    try:
        rows = store.runs(kind="benchmark")
    finally:
        store.close()
    return [r for r in rows if r["status"] == "done"]


def load_cells(out: Path) -> list[dict[str, Any]]:
    """Every finished inversion cell of the store in ``out`` (its result payloads)."""
    rows = finished_runs(out, script="defense_curves")
    # attacks on a model's updates have no class-level `success`: not on these curves
    return [r["result"] for r in rows if r["result"].get("kind") != "update"]


def summarise(cells: list[dict[str, Any]], *, max_loss: float) -> dict[str, Any]:
    """Per attack: the rows (sorted by defense, then accuracy) and the best defense."""
    by_attack: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        m = c["metrics"]
        by_attack[c["attack_label"]].append({
            "defense": c["defense"],
            "label": c["defense_label"],
            "strength": _strength(c["defense"], c.get("defense_params"), c["defense_label"]),
            "accuracy": c["target_accuracy"],
            "success": m.get("success"),
            "success_lo": m.get("success_lo"),
            "success_hi": m.get("success_hi"),
            "acc1": m.get("acc1"),
            "knn_dist": m.get("knn_dist"),
            "fid": m.get("fid"),
            "queries": c.get("queries"),
            "epsilon": c.get("defense_epsilon"),
        })
    out: dict[str, Any] = {}
    for attack, rows in by_attack.items():
        base = next((r for r in rows if r["defense"] == "none"), None)
        base_acc = base["accuracy"] if base else max(r["accuracy"] for r in rows)
        for r in rows:
            r["loss"] = round(100 * (base_acc - r["accuracy"]), 1)
        # the undefended row first, then each defense's strengths in the order they ran
        first_seen = {d: i for i, d in reversed(list(enumerate(r["defense"] for r in rows)))}
        rows.sort(key=lambda r: (r["defense"] != "none", first_seen[r["defense"]]))
        ok = [r for r in rows if r["defense"] != "none" and r["loss"] <= max_loss
              and r["success"] is not None]
        best = min(ok, key=lambda r: r["success"]) if ok else None
        out[attack] = {"undefended_accuracy": base_acc,
                       "undefended_success": base["success"] if base else None,
                       "rows": rows, "best_within_loss": best}
    return out


def markdown(summary: dict[str, Any], *, max_loss: float) -> str:
    """One table per attack and the best defense within ``max_loss`` points."""
    lines = []
    for attack, s in summary.items():
        lines += [f"#### {attack}", "",
                  "| defense | strength | target acc | loss (pts) | success [95% CI] | acc1 | "
                  "knn_dist | queries |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            strength = r["strength"] + (f" (ε spent {r['epsilon']:.2f})" if r["epsilon"] else "")
            succ = ("-" if r["success"] is None else
                    f"{r['success']:.2f} [{r['success_lo']:.2f}, {r['success_hi']:.2f}]")
            lines.append(
                f"| {r['defense']} | {strength} | {r['accuracy']:.3f} | {r['loss']:.1f} | "
                f"{succ} | {r['acc1']:.2f} | {r['knn_dist']:.2f} | {r['queries']:,} |"
            )
        best = s["best_within_loss"]
        if s["undefended_success"] is None:  # the undefended cell failed or was not run
            lines += ["", "No finished undefended cell: no best defense to name.", ""]
            continue
        lines += ["", (f"Lowest `success` within {max_loss:g} points of the undefended accuracy: "
                       f"**{best['label']}**, {best['success']:.2f} at {best['accuracy']:.3f} "
                       f"(undefended {s['undefended_success']:.2f} at "
                       f"{s['undefended_accuracy']:.3f})." if best else
                       f"No defense stays within {max_loss:g} points of the undefended "
                       "accuracy."), ""]
    return "\n".join(lines)


def plots(summary: dict[str, Any], png_dir: Path) -> list[str]:
    """One PNG per attack: accuracy vs success per defense, with 95% intervals."""
    from invbench.report.plots import tradeoff_plot

    written = []
    for attack, s in summary.items():
        curves: dict[str, list[tuple[float, float]]] = defaultdict(list)
        bars: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for r in sorted(s["rows"], key=lambda r: -r["accuracy"]):
            if r["defense"] == "none" or r["success"] is None:
                continue
            curves[r["defense"]].append((r["accuracy"], r["success"]))
            bars[r["defense"]].append((r["success_lo"], r["success_hi"]))
        if not curves:
            continue
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", attack).strip("_")
        path = png_dir / f"curves-{name}.png"
        tradeoff_plot(path, dict(curves), intervals=dict(bars), xlabel="target accuracy",
                      ylabel="success", title=f"privacy-utility: {attack}",
                      baseline=s["undefended_success"], baseline_label="undefended")
        written.append(str(path))
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the run's output folder")
    ap.add_argument("--max-loss", type=float, default=3.0, help="accuracy points allowed")
    ap.add_argument("--png-dir", type=Path, default=None, help="where the PNGs go (--out)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = ap.parse_args()
    summary = summarise(load_cells(args.out), max_loss=args.max_loss)
    written = plots(summary, args.png_dir or args.out)
    if args.json:
        json.dump({"attacks": summary, "plots": written}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(markdown(summary, max_loss=args.max_loss) + "\n")
        for w in written:
            sys.stdout.write(f"plot: {w}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
