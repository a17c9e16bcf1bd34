"""The ``invbench`` command.

Results go to stdout (a rich table, or exactly one JSON document with ``--json``); progress
and logs go to stderr. A user mistake is one line on stderr and exit code 2, before any work
is done or anything is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from invbench.errors import InvbenchError
from invbench.tabular.cli import register as register_tabular

app = typer.Typer(
    name="invbench",
    help="Model inversion attacks, defenses and a reproducible benchmark.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# Tables are wide; when stdout is a file or a pipe, do not squeeze them into 80 columns.
_out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)


@app.command()
def run(
    config: Annotated[Path | None, typer.Option(help="YAML spec file (flags override it).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset (see `invbench list`).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder with the dataset's files.")] = None,
    resolution: Annotated[int | None, typer.Option(help="Resize images to this size.")] = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(help="Defense NAME or NAME:key=value,...; repeatable. Default: none, mid."),
    ] = None,
    attack: Annotated[
        list[str] | None,
        typer.Option(help="Attack NAME or NAME:key=value,...; repeatable. Default: mi-face, gmi."),
    ] = None,
    label: Annotated[
        list[int] | None, typer.Option(help="Target label to attack; repeatable. Default: all.")
    ] = None,
    private_class: Annotated[
        list[int] | None,
        typer.Option(help="Dataset class id that is private; repeatable. Default: first half."),
    ] = None,
    public_class: Annotated[
        list[int] | None,
        typer.Option(help="Dataset class id the attacker may use; repeatable. Default: the rest."),
    ] = None,
    per_label: Annotated[int | None, typer.Option(help="Reconstructions per label.")] = None,
    max_per_class: Annotated[
        int | None, typer.Option(help="Cap on images per class (drawn with the seed).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Target training epochs.")] = None,
    budget: Annotated[int | None, typer.Option(help="Query budget per attack run.")] = None,
    output: Annotated[
        str | None,
        typer.Option(help="Output processing of query answers, NAME or NAME:key=value,... "
                     "(top-k, round, noise; black-box and label-only attacks only)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or mps.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (store, cache, grids).")] = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="Table columns, comma-separated metric keys (default: "
                     "success,acc1,knn_dist,fid); --json always has every key."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Run the benchmark: every defense against every attack (default: digits, seed 0).

    Exits 1 when a cell failed (it is stored as failed with its message; the others ran).
    """
    from invbench.bench.runner import run_benchmark
    from invbench.config import load_spec, make_spec, parse_method

    fields: dict[str, Any] = {
        "dataset": dataset,
        "data_dir": data_dir,
        "resolution": resolution,
        "defenses": [parse_method(d) for d in defense] if defense else None,
        "attacks": [parse_method(a) for a in attack] if attack else None,
        "labels": list(label) if label else None,
        "protocol": {
            "private_classes": list(private_class) if private_class else None,
            "public_classes": list(public_class) if public_class else None,
            "max_per_class": max_per_class,
        }
        if private_class or public_class or max_per_class is not None
        else None,
        "per_label": per_label,
        "budget": budget,
        "output": parse_method(output) if output else None,
        "seed": seed,
        "device": device,
        "out": out,
    }
    if epochs is not None:
        fields["train"] = {"epochs": epochs}
    if config is not None:
        # Flags override the file; nested blocks (train, protocol) are merged key by key.
        merged = load_spec(config).model_dump(exclude_none=True)
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, dict):
                merged[key] = {
                    **merged.get(key, {}),
                    **{k: v for k, v in value.items() if v is not None},
                }
            else:
                merged[key] = value
        spec = make_spec(**merged)
    else:
        spec = make_spec(**fields)
    columns = _metric_columns(metrics)
    results = run_benchmark(spec, quiet=quiet)
    failed = [r for r in results if r.get("status") == "failed"]
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        from invbench.report.tables import result_warnings, results_table

        _out.print(results_table(results, metrics=columns))
        for w in result_warnings(results):
            _out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
        for r in results:
            grid = (r.get("artifacts") or {}).get("grid")
            if grid:
                _out.print(f"{r['defense']} x {r['attack']}: {grid}", highlight=False)
        _out.print(f"store: {spec.out / 'invbench.sqlite'}", highlight=False)
    if failed:
        for r in failed:
            sys.stderr.write(
                f"invbench: {r.get('defense_label')} x {r.get('attack_label')} failed: "
                f"{r.get('error')}\n"
            )
        raise typer.Exit(1)


def _metric_columns(text: str | None) -> list[str] | None:
    """``--metrics success,acc1`` -> the keys, each checked against what the metrics return."""
    from invbench.errors import ConfigError
    from invbench.metrics.base import known_keys

    if text is None:
        return None
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise ConfigError("--metrics: give at least one metric key (e.g. success,acc1)")
    known = known_keys()
    for c in cols:
        if c not in known and not c.startswith("acc1_"):
            raise ConfigError(
                f"--metrics: unknown metric key '{c}'; choose from: {', '.join(sorted(known))}"
            )
    return cols


@app.command("list")
def list_methods(
    params: Annotated[
        bool, typer.Option("--params", help="Show each method's parameters.")
    ] = False,
) -> None:
    """List datasets, attacks, defenses and metrics, one line each."""
    from invbench.registry import ATTACKS, DATASETS, DEFENSES, METRICS, OUTPUTS, summary

    for title, reg in (
        ("datasets", DATASETS),
        ("attacks", ATTACKS),
        ("defenses", DEFENSES),
        ("outputs", OUTPUTS),
        ("metrics", METRICS),
    ):
        table = Table(title=title, title_justify="left", show_header=False, box=None)
        table.add_column("name", style="bold")
        table.add_column("what")
        for name, obj in reg.items():
            extra = f" [{obj.access}]" if title == "attacks" else ""
            if title == "metrics" and getattr(obj, "keys", ()):
                extra = f" -> {', '.join(obj.keys)}"
            table.add_row(name, summary(obj) + extra)
            if params and hasattr(obj, "describe_params"):
                for pname, ptype, default, desc in obj.describe_params():
                    table.add_row("", f"  {pname}: {ptype} = {default!r}  {desc}")
        _out.print(table)


@app.command()
def runs(
    out: Annotated[Path, typer.Option(help="Output folder holding invbench.sqlite.")] = Path(
        "runs"
    ),
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Show the stored runs."""
    from invbench.bench.store import Store
    from invbench.errors import ConfigError

    db = out / "invbench.sqlite"
    if not db.is_file():
        raise ConfigError(f"no store at '{db}': run `invbench run --out {out}` first")
    store = Store(db)
    try:
        rows = store.runs(kind=kind)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    from invbench.report.tables import runs_table

    _out.print(runs_table(rows))


register_tabular(app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: runs the app and turns user errors into one line + exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="invbench", standalone_mode=False)
    except InvbenchError as exc:
        sys.stderr.write(f"invbench: error: {exc}\n")
        return 2
    except TyperException as exc:  # usage errors (unknown option, bad int...): exit code 2
        sys.stderr.write(f"invbench: error: {' '.join(exc.format_message().split())}\n")
        return int(exc.exit_code or 2)
    except typer.Abort:
        sys.stderr.write("invbench: aborted\n")
        return 130
    except typer.Exit as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    # click returns a command's typer.Exit code instead of raising it without standalone mode
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


def _entry() -> None:
    """The ``invbench`` console script."""
    raise SystemExit(main())
