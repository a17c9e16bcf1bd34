"""The query-only attacks of a run as Markdown tables: results, and queries per reconstruction.

Reads the finished cells of a run's store (``invbench run --out DIR``) whose attack needs
black-box or label-only access, and prints

* one table of the class-level attacks: target (defense, and the output processing its
  answers went through), attack, ``success`` [95% CI], acc1, knn_dist, fid, queries in
  ``invert`` and in ``prepare``, queries per reconstruction (both stages over the number of
  reconstructions), seconds of the cell;
* one table of the attacks on the target's updates (Updates-Leak): each score with, in
  brackets, what guessing without a query scores.

Usage::

    python benchmarks/query_table.py --out DIR [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def load_cells(out: Path) -> list[dict[str, Any]]:
    """The finished query-only cells of the store in ``out``: result payloads and specs."""
    from defense_curves import finished_runs  # this folder's sibling script

    from invbench.registry import ATTACKS

    cells = []
    for r in finished_runs(out, script="query_table"):
        res = r["result"]
        name = res.get("attack")
        if name not in ATTACKS:
            continue
        if ATTACKS.get(name).access == "white-box":
            continue
        spec = r.get("spec") or {}
        images = len(spec.get("labels") or []) * int(spec.get("per_label") or 0)
        cells.append({**res, "output": spec.get("output"), "images": images or None})
    return cells


def _target(cell: dict[str, Any]) -> str:
    out = cell.get("output")
    label = str(cell.get("defense_label") or cell.get("defense"))
    if not out:
        return label
    params = ",".join(f"{k}={v}" for k, v in sorted((out.get("params") or {}).items()))
    return f"{label} + {out.get('name')}" + (f":{params}" if params else "")


def _f(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _n(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def inversion_table(cells: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per class-level query-only cell."""
    lines = [
        "| target | attack | target acc | success [95% CI] | acc1 | knn_dist | fid | "
        "queries (invert) | queries (prepare) | queries / image | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        m = c.get("metrics") or {}
        per = ((c.get("queries") or 0) + (c.get("prepare_queries") or 0)) / (c["images"] or 1)
        lines.append(
            f"| {_target(c)} | {c.get('attack_label')} | {_f(c.get('target_accuracy'), 3)} | "
            f"{_f(m.get('success'))} [{_f(m.get('success_lo'))}, {_f(m.get('success_hi'))}] | "
            f"{_f(m.get('acc1'))} | {_f(m.get('knn_dist'))} | {_f(m.get('fid'))} | "
            f"{_n(c.get('queries'))} | {_n(c.get('prepare_queries'))} | {per:,.0f} | "
            f"{_f(c.get('seconds'), 0)} |"
        )
    return lines


def update_table(cells: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per update-attack cell (score, and without queries)."""
    keys = ("label_acc", "label_kl", "label_l1", "update_mse", "update_ssim",
            "update_agreement")
    lines = [
        "| target | attack | updates | " + " | ".join(keys) + " | queries | seconds |",
        "|---|---|---|" + "---|" * len(keys) + "---|---|",
    ]
    for c in cells:
        m, base = c.get("metrics") or {}, (c.get("references") or {}).get("baseline") or {}
        scores = []
        for k in keys:
            if m.get(k) is None:
                scores.append("-")
                continue
            d = 4 if k == "update_mse" else 2
            scores.append(f"{m[k]:.{d}f} ({base.get(k, float('nan')):.{d}f})")
        lines.append(
            f"| {_target(c)} | {c.get('attack_label')} | "
            f"{c.get('updates')} x {c.get('update_size')} | " + " | ".join(scores)
            + f" | {_n(c.get('queries'))} | {_f(c.get('seconds'), 0)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="the run's output folder")
    ap.add_argument("--json", action="store_true", help="print the cells as JSON")
    args = ap.parse_args(argv)
    cells = load_cells(args.out)
    updates = [c for c in cells if c.get("kind") == "update"]
    inversions = [c for c in cells if c.get("kind") != "update"]
    if args.json:
        sys.stdout.write(json.dumps({"inversions": inversions, "updates": updates},
                                    indent=2, default=str) + "\n")
        return 0
    print("\n".join(inversion_table(inversions)))
    print()
    print("\n".join(update_table(updates)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
