"""Cold and warm cost of a benchmark spec, stage by stage, with peak memory; prints JSON.

Runs ``invbench run --config SPEC`` twice through the Python API: first into a fresh output
folder (cold: every target, evaluator, prior and reference is trained or made), then again into
the same folder (warm: everything comes from the cache and the store). Prints one JSON object:

    {"spec": ..., "machine": {...}, "cold": {"seconds": ..., "stages": {...}},
     "warm": {"seconds": ...}, "peak_rss_mb": ..., "cells": [{defense, attack, metrics...}]}

Usage::

    python benchmarks/pipeline_cost.py examples/fashion-mnist.yaml [--out DIR] [--threads N]

Targets of the issue: the Fashion-MNIST spec <= 30 min cold and <= 1 min warm on 2 CPU cores,
peak memory <= 3 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path, help="YAML spec (e.g. examples/fashion-mnist.yaml)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a temp dir)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--device", default=None, help="cpu or cuda")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args()

    import torch

    from invbench.bench.runner import run_benchmark
    from invbench.config import load_spec

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="invbench-cost-"))
    if out.exists():
        shutil.rmtree(out)
    overrides = {"out": out}
    if args.device:
        overrides["device"] = args.device
    spec = load_spec(args.spec, **overrides)

    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    results = run_benchmark(spec, quiet=args.quiet, timings=stages)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_benchmark(spec, quiet=True)
    warm = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {
        "spec": str(args.spec),
        "out": str(out),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "device": spec.device,
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "cold": {"seconds": round(cold, 1), "stages": stages},
        "warm": {"seconds": round(warm, 1)},
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "cells": [
            {
                "defense": r.get("defense_label"),
                "attack": r.get("attack_label"),
                "status": r.get("status"),
                "target_accuracy": r.get("target_accuracy"),
                "evaluator_accuracy": r.get("evaluator_accuracy"),
                "metrics": r.get("metrics"),
                "references": r.get("references"),
                "warnings": r.get("warnings"),
                "queries": r.get("queries"),
                "prepare_queries": r.get("prepare_queries"),
                "seconds": r.get("seconds"),
                "grid": (r.get("artifacts") or {}).get("grid"),
            }
            for r in results
        ],
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if all(r.get("status") == "done" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
