"""The ``invbench tabular`` and ``invbench theory dp-bound`` commands.

:func:`register` adds them to the main typer app (``invbench.cli`` calls it). Every input is
validated before any model is trained or anything is written; a user mistake raises an
:class:`~invbench.errors.InvbenchError`, which the main entry point prints as one line on
stderr with exit code 2. Results go to stdout (a table, or exactly one JSON object with
``--json``); progress and logs go to stderr.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from invbench.errors import ConfigError

__all__ = ["register", "tabular", "dp_bound"]

_DATASETS = ("synthetic", "iwpc", "csv")
_TASKS = ("regression", "tree")


def _choice(name: str, value: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ConfigError(f"--{name} must be one of {', '.join(options)}. Got {value!r}")
    return value


def _grid(flag: str, values: list[float] | None, *, positive: bool) -> list[float] | None:
    if not values:
        return None
    for v in values:
        bad = not math.isfinite(v) or (v <= 0 if positive else v < 0)
        if bad:
            want = "> 0" if positive else ">= 0"
            raise ConfigError(f"--{flag} must be a finite number {want}. Got {v!r}")
    return list(values)


def tabular(
    dataset: Annotated[str, typer.Option(help="synthetic, iwpc (needs invbench[warfarin]) or csv.")
                       ] = "synthetic",
    csv: Annotated[Path | None, typer.Option("--csv", help="CSV file for --dataset csv.")
                   ] = None,
    target: Annotated[str | None, typer.Option(help="Target column of the CSV (numeric).")
                      ] = None,
    sensitive: Annotated[str, typer.Option(help="Sensitive attribute: vkorc1 or cyp2c9 "
                                                "(iwpc/synthetic), a column name (csv).")
                         ] = "vkorc1",
    categorical: Annotated[list[str] | None, typer.Option(
        help="CSV column to treat as categorical; repeatable (non-numeric columns always are)."
    )] = None,
    task: Annotated[str, typer.Option(help="regression (linear models) or tree (ID3).")
                    ] = "regression",
    lam: Annotated[list[float] | None, typer.Option(
        help="MID lambda (>= 0); repeatable. Default: 0.1 0.3 1 3 10 30 (regression), "
             "0.01 0.02 0.03 0.05 0.1 0.3 (tree).")] = None,
    eps: Annotated[list[float] | None, typer.Option(
        help="DP epsilon (> 0); repeatable. Default: 0.25 1 5 20 100.")] = None,
    repeats: Annotated[int, typer.Option(help="Random train/test splits averaged.")] = 3,
    n: Annotated[int, typer.Option(help="Rows of the synthetic dataset.")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (splits, DP noise, synthetic data).")
                    ] = 0,
    device: Annotated[str, typer.Option(help="Torch device for DP-SGD.")] = "cpu",
    out: Annotated[Path, typer.Option(help="Folder for the PNG plot.")] = Path("runs/tabular"),
    store: Annotated[Path, typer.Option(help="SQLite results store.")
                     ] = Path("runs/invbench.sqlite"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")
                       ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs.")] = False,
) -> None:
    """Privacy-utility trade-off of MID vs DP on a tabular model under the MAP attack."""
    from invbench.progress import log
    from invbench.tabular.data import SENSITIVE_CHOICES, load_tabular

    # ---- validate everything before any work
    _choice("dataset", dataset, _DATASETS)
    _choice("task", task, _TASKS)
    lams = _grid("lam", lam, positive=False)
    epsilons = _grid("eps", eps, positive=True)
    if repeats < 1:
        raise ConfigError(f"--repeats must be an int >= 1. Got {repeats}")
    if seed < 0:
        raise ConfigError(f"--seed must be an int >= 0. Got {seed}")
    if dataset == "synthetic" and n < 20:
        raise ConfigError(f"--n must be an int >= 20. Got {n}")
    if dataset in ("synthetic", "iwpc") and sensitive not in SENSITIVE_CHOICES:
        raise ConfigError(
            f"--sensitive must be one of {', '.join(SENSITIVE_CHOICES)} for --dataset "
            f"{dataset}. Got {sensitive!r}"
        )
    if dataset != "csv" and (csv is not None or target is not None or categorical):
        raise ConfigError("--csv, --target and --categorical only apply to --dataset csv")
    if dataset == "csv":
        if csv is None:
            raise ConfigError("--dataset csv needs --csv PATH")
        if not target:
            raise ConfigError("--dataset csv needs --target COLUMN")
    if store.exists() and store.is_dir():
        raise ConfigError(f"--store '{store}' is a folder; pass a database file path")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out '{out}' is a file; pass a folder for the plot")
    try:
        import torch

        torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device must be a torch device (cpu, cuda, cuda:N, mps). "
                          f"Got {device!r}") from None
    as_quiet = quiet or as_json
    data = load_tabular(dataset, sensitive=sensitive, path=csv, target=target,
                        categorical=categorical, n=n, seed=seed)

    # ---- work
    from invbench.bench.store import Store, spec_hash
    from invbench.tabular.tradeoff import plot_tradeoff, run_tradeoff

    log(f"{data.name}: {data.n} records, {data.X.shape[1]} features, sensitive "
        f"'{data.sensitive}' {data.sensitive_values()}", quiet=as_quiet)
    t0 = time.perf_counter()
    result = run_tradeoff(data, task=task, lams=lams, epsilons=epsilons, seed=seed,
                          repeats=repeats, device=device, quiet=as_quiet)
    seconds = time.perf_counter() - t0
    stem = f"{dataset}-{data.sensitive}-{task}".replace("/", "_")
    png = plot_tradeoff(result, Path(out) / f"{stem}.png")
    base_spec: dict[str, Any] = {
        "command": "tabular",
        "dataset": dataset,
        "csv": str(csv) if csv is not None else None,
        "target": target,
        "categorical": sorted(categorical or []),
        "n": n if dataset == "synthetic" else None,
        "sensitive": data.sensitive,
        "task": task,
        "lams": lams,
        "epsilons": epsilons,
        "repeats": repeats,
        "seed": seed,
    }
    with Store(store) as db:
        for point in result["points"]:
            spec = {**base_spec, "defense": point["defense"], "param": point["param"]}
            db.record(
                spec_hash=spec_hash(spec),
                kind="tabular",
                spec=spec,
                result={**point, "baseline": result["baseline"], "dataset": result["dataset"]},
                metrics={
                    "utility": {point["utility_metric"]: point["utility"]},
                    "attack": {
                        "acc_train": point["attack_acc_train"],
                        "acc_test": point["attack_acc_test"],
                        "f1_train": point["attack_f1_train"],
                        "f1_test": point["attack_f1_test"],
                        "baseline": result["baseline"],
                    },
                },
                artifacts={"plot": str(png)},
                seconds=seconds / max(1, len(result["points"])),
            )
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['dataset']} / {result['sensitive']} / {task} "
                        f"(majority baseline {result['baseline']:.3f})")
    for col in ("defense", "param", result["points"][0]["utility_metric"], "acc train",
                "acc test", "f1 train", "f1 test"):
        table.add_column(col)
    for p in result["points"]:
        table.add_row(p["defense"], "-" if p["param"] is None else f"{p['param']:g}",
                      f"{p['utility']:.4g}", f"{p['attack_acc_train']:.3f}",
                      f"{p['attack_acc_test']:.3f}", f"{p['attack_f1_train']:.3f}",
                      f"{p['attack_f1_test']:.3f}")
    console = Console(soft_wrap=True)
    console.print(table)
    console.print(f"plot: {png}\nstore: {store}", highlight=False)


def dp_bound(
    eps: Annotated[float, typer.Option(help="The learner's epsilon (>= 0).")],
    n: Annotated[int, typer.Option(help="Number of training records (>= 1).")],
    delta: Annotated[float, typer.Option(help="The learner's delta, in [0, 1].")] = 0.0,
    level: Annotated[float, typer.Option(help="Acceptable MI privacy loss, in (0, 1).")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The MID paper's bound on MI privacy loss of an (eps, delta)-DP learner on n records."""
    from invbench.theory import mi_privacy_loss_bound, min_epsilon_for_loss

    bound = mi_privacy_loss_bound(eps, delta, n)
    eps_star = min_epsilon_for_loss(level, delta, n)
    if as_json:
        sys.stdout.write(json.dumps({
            "eps": eps, "delta": delta, "n": n, "bound": bound, "level": level,
            "max_epsilon_for_level": eps_star,
        }) + "\n")
        return
    sys.stdout.write(
        f"MI privacy loss bound for an (eps={eps:g}, delta={delta:g})-DP learner on n={n} "
        f"records: {bound:.6g}\n"
        f"to keep the bound <= {level:g} with n={n}, delta={delta:g}: eps <= {eps_star:.6g} "
        f"(n*eps = {n * eps_star:.4g}; eps must shrink like 1/n)\n"
    )


def register(app: typer.Typer) -> None:
    """Add ``tabular`` and the ``theory`` group (``dp-bound``) to the typer ``app``."""
    app.command("tabular")(tabular)
    theory = typer.Typer(help="Theory calculators (the DP bound on MI privacy loss).",
                         no_args_is_help=True, add_completion=False)
    theory.command("dp-bound")(dp_bound)
    app.add_typer(theory, name="theory")
