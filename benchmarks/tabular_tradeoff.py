"""MID vs differential privacy against the MAP attack on IWPC (the MID paper's Figure 2(a)(b)).

Runs :func:`invbench.tabular.tradeoff.run_tradeoff` on the IWPC warfarin table (needs the
``warfarin`` extra; ``--dataset synthetic`` runs without it) for linear regression (MID,
functional mechanism, DP-SGD; attack ``map-linear``) and for decision trees (MID trees,
DP-ID3; attack ``map-tree``, white-box), averaged over ``--repeats`` random 75/25 splits, and
summarises the two claims the issue asks about:

1. the undefended MAP attack on the sensitive genotype vs the majority-class baseline;
2. at equal utility, whether MID's attack accuracy is at or below DP's: for every DP point
   whose utility falls inside the range MID's curve spans (undefended point included), MID's
   attack accuracy is linearly interpolated at that utility, and ``mid_minus_dp`` is
   MID's accuracy minus DP's (<= 0: MID at or below DP).

Prints one JSON object::

    {"dataset": "iwpc", "sensitive": "vkorc1", "repeats": 5, "seconds": ...,
     "regression": {<run_tradeoff result>}, "tree": {<run_tradeoff result>},
     "summary": {"regression": {"baseline": ..., "undefended_acc_train": ...,
                                "undefended_acc_test": ..., "equal_utility": [...],
                                "mid_at_or_below_dp": {"train": "k/m", "test": "k/m"}},
                 "tree": {...}}}

Usage::

    python benchmarks/tabular_tradeoff.py --dataset iwpc --sensitive vkorc1 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from invbench.tabular.data import load_tabular
from invbench.tabular.tradeoff import run_tradeoff


def _interp_mid(points: list[dict[str, Any]], utility: float, key: str) -> float | None:
    """MID's attack metric ``key`` at ``utility``, interpolated along the MID curve."""
    curve = sorted(
        (p["utility"], p[key]) for p in points if p["defense"] in ("none", "mid")
    )
    xs = np.array([c[0] for c in curve])
    ys = np.array([c[1] for c in curve])
    if utility < xs.min() or utility > xs.max():
        return None
    return float(np.interp(utility, xs, ys))


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The two claims for one task (see the module docstring)."""
    points = result["points"]
    none = next(p for p in points if p["defense"] == "none")
    rows = []
    wins = {"train": [0, 0], "test": [0, 0]}
    for p in points:
        if not p["defense"].startswith("dp-"):
            continue
        row: dict[str, Any] = {"defense": p["defense"], "eps": p["param"],
                               "utility": p["utility"]}
        for split in ("train", "test"):
            key = f"attack_acc_{split}"
            mid = _interp_mid(points, p["utility"], key)
            row[f"dp_acc_{split}"] = p[key]
            row[f"mid_acc_{split}"] = mid
            row[f"mid_minus_dp_{split}"] = None if mid is None else mid - p[key]
            if mid is not None:
                wins[split][1] += 1
                wins[split][0] += int(mid <= p[key] + 1e-12)
        rows.append(row)
    return {
        "baseline": result["baseline"],
        "undefended_utility": none["utility"],
        "undefended_acc_train": none["attack_acc_train"],
        "undefended_acc_test": none["attack_acc_test"],
        "equal_utility": rows,
        "mid_at_or_below_dp": {s: f"{w}/{m}" for s, (w, m) in wins.items()},
    }


def main(argv: list[str] | None = None) -> int:
    """Run both tasks and print the JSON report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="iwpc", choices=("iwpc", "synthetic"))
    ap.add_argument("--sensitive", default="vkorc1", choices=("vkorc1", "cyp2c9"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    data = load_tabular(args.dataset, sensitive=args.sensitive, seed=args.seed)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"dataset": args.dataset, "sensitive": args.sensitive,
                           "n": data.n, "repeats": args.repeats}
    summary = {}
    for task in ("regression", "tree"):
        res = run_tradeoff(data, task=task, seed=args.seed, repeats=args.repeats,
                           quiet=args.quiet)
        out[task] = res
        summary[task] = summarise(res)
    out["seconds"] = time.perf_counter() - t0
    out["summary"] = summary
    sys.stdout.write(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
