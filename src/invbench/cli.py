"""The ``invbench`` command.

Results go to stdout (a rich table, or exactly one JSON document with ``--json``); progress
and logs go to stderr. A user mistake is one line on stderr and exit code 2, before any work
is done or anything is written.
"""

from __future__ import annotations

import functools
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


# Options shared by `run` and `analyze` (the flags that pick a spec's cells).
ConfigOpt = Annotated[Path | None, typer.Option(help="YAML spec file (flags override it).")]
DatasetOpt = Annotated[str | None, typer.Option(help="Dataset (see `invbench list`).")]
DataDirOpt = Annotated[Path | None, typer.Option(help="Folder with the dataset's files.")]
ResolutionOpt = Annotated[int | None, typer.Option(help="Resize images to this size.")]
DefenseOpt = Annotated[
    list[str] | None,
    typer.Option(help="Defense NAME or NAME:key=value,...; repeatable. Default: none, mid."),
]
AttackOpt = Annotated[
    list[str] | None,
    typer.Option(help="Attack NAME or NAME:key=value,...; repeatable. Default: mi-face, gmi."),
]
LabelOpt = Annotated[
    list[int] | None, typer.Option(help="Target label to attack; repeatable. Default: all.")
]
PrivateClassOpt = Annotated[
    list[int] | None,
    typer.Option(help="Dataset class id that is private; repeatable. Default: first half."),
]
PublicClassOpt = Annotated[
    list[int] | None,
    typer.Option(help="Dataset class id the attacker may use; repeatable. Default: the rest."),
]
PerLabelOpt = Annotated[int | None, typer.Option(help="Reconstructions per label.")]
MaxPerClassOpt = Annotated[
    int | None, typer.Option(help="Cap on images per class (drawn with the seed).")
]
EpochsOpt = Annotated[int | None, typer.Option(help="Target training epochs.")]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed.")]
DeviceOpt = Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N or mps.")]
OutOpt = Annotated[Path | None, typer.Option(help="Output folder (store, cache, grids).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs.")]


def _spec_fields(
    *,
    dataset: str | None,
    data_dir: Path | None,
    resolution: int | None,
    defense: list[str] | None,
    attack: list[str] | None,
    label: list[int] | None,
    private_class: list[int] | None,
    public_class: list[int] | None,
    per_label: int | None,
    max_per_class: int | None,
    epochs: int | None,
    seed: int | None,
    device: str | None,
    out: Path | None,
) -> dict[str, Any]:
    """The run-spec fields the shared flags set (``None``: not given, keep the file's)."""
    from invbench.config import parse_method

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
        "seed": seed,
        "device": device,
        "out": out,
    }
    if epochs is not None:
        fields["train"] = {"epochs": epochs}
    return fields


@app.command()
def run(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    resolution: ResolutionOpt = None,
    defense: DefenseOpt = None,
    attack: AttackOpt = None,
    label: LabelOpt = None,
    private_class: PrivateClassOpt = None,
    public_class: PublicClassOpt = None,
    per_label: PerLabelOpt = None,
    max_per_class: MaxPerClassOpt = None,
    epochs: EpochsOpt = None,
    budget: Annotated[int | None, typer.Option(help="Query budget per attack run.")] = None,
    output: Annotated[
        str | None,
        typer.Option(help="Output processing of query answers, NAME or NAME:key=value,... "
                     "(top-k, round, noise; black-box and label-only attacks only)."),
    ] = None,
    target_url: Annotated[
        str | None,
        typer.Option(help="Attack this endpoint on this machine (`invbench serve`) instead of "
                     "training targets; black-box and label-only attacks only."),
    ] = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="Table columns, comma-separated metric keys (default: "
                     "success,acc1,knn_dist,fid); --json always has every key."),
    ] = None,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Run the benchmark: every defense against every attack (default: digits, seed 0).

    Exits 1 when a cell failed (it is stored as failed with its message; the others ran).
    """
    from invbench.bench.runner import run_benchmark
    from invbench.config import parse_method

    fields = _spec_fields(
        dataset=dataset, data_dir=data_dir, resolution=resolution, defense=defense,
        attack=attack, label=label, private_class=private_class, public_class=public_class,
        per_label=per_label, max_per_class=max_per_class, epochs=epochs, seed=seed,
        device=device, out=out,
    )
    fields["budget"] = budget
    fields["output"] = parse_method(output) if output else None
    fields["target_url"] = target_url
    spec = _make_spec(config, fields)
    columns = _metric_columns(metrics)
    results = run_benchmark(spec, quiet=quiet)
    _print_results(results, out=spec.out, columns=columns, as_json=as_json)


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep YAML: a run spec with {grid: [...]} "
                                         "values, seeds: [...] and zip: blocks.")],
    workers: Annotated[int, typer.Option(help="Cells run at once (local process pool, or "
                                         "the CPUs of a --address local Ray instance).")] = 1,
    backend: Annotated[str, typer.Option(help="local (this machine) or ray.")] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (HOST:PORT, ray://HOST:PORT) or 'local'."),
    ] = None,
    out: OutOpt = None,
    metrics: Annotated[
        str | None,
        typer.Option(help="Table columns, comma-separated metric keys (as in `run`)."),
    ] = None,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Run a grid of cells (datasets x defenses x strengths x attacks x seeds); resumable.

    Cells the store in --out already holds are not run again, so rerunning after an
    interruption (even kill -9) runs only what is missing. Exits 1 when a cell failed.
    """
    from invbench.bench.grid import load_sweep
    from invbench.bench.sweep import check_backend, run_sweep

    check_backend(backend, workers=workers, address=address)
    plan = load_sweep(spec, out=out)
    columns = _metric_columns(metrics)
    results = run_sweep(plan, workers=workers, backend=backend, address=address, quiet=quiet)
    _print_results(results, out=plan.out, columns=columns, as_json=as_json)


def _print_results(results: list[dict[str, Any]], *, out: Path, columns: list[str] | None,
                   as_json: bool) -> None:
    """Print result rows (one JSON array, or the tables) and exit 1 if a cell failed."""
    failed = [r for r in results if r.get("status") == "failed"]
    if as_json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        from invbench.report.tables import result_warnings, results_table, updates_table

        updates = [r for r in results if _is_update(r)]
        inversions = [r for r in results if not _is_update(r)]
        if inversions:
            _out.print(results_table(inversions, metrics=columns))
        if updates:
            _out.print(updates_table(updates, title="attacks on the target's updates "
                                     "(attack score, in brackets: guessing without queries)"))
        for w in result_warnings(results):
            _out.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
        for r in results:
            grid = (r.get("artifacts") or {}).get("grid")
            if grid:
                _out.print(f"{r['defense']} x {r['attack']}: {grid}", highlight=False)
        _out.print(f"store: {out / 'invbench.sqlite'}", highlight=False)
    if failed:
        for r in failed:
            sys.stderr.write(
                f"invbench: {r.get('defense_label')} x {r.get('attack_label')} failed: "
                f"{r.get('error')}\n"
            )
        raise typer.Exit(1)


def _is_update(result: dict[str, Any]) -> bool:
    """Whether a result row is an update attack's (the runner marks every row's kind)."""
    return result.get("kind") == "update"


def _make_spec(config: Path | None, fields: dict[str, Any]) -> Any:
    """The validated run spec: ``config`` (if any) with the flags in ``fields`` over it.

    Nested blocks (train, protocol) are merged key by key; ``None`` means "not given".
    """
    from invbench.config import load_spec, make_spec

    if config is None:
        return make_spec(**fields)
    # only what the file sets: a default is not "given" (target_url refuses given defenses)
    merged = load_spec(config).model_dump(exclude_none=True, exclude_unset=True)
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
    return make_spec(**merged)


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


StoreOutOpt = Annotated[Path, typer.Option(help="Output folder holding invbench.sqlite.")]


def _open_store(out: Path) -> Any:
    """The results store under ``out``; a missing one is a one-line ConfigError."""
    from invbench.bench.store import Store
    from invbench.errors import ConfigError

    db = out / "invbench.sqlite"
    if not db.is_file():
        raise ConfigError(f"no store at '{db}': run `invbench run --out {out}` or "
                          f"`invbench sweep SPEC --out {out}` first")
    return Store(db)


@app.command()
def runs(
    out: StoreOutOpt = Path("runs"),
    kind: Annotated[str | None, typer.Option(help="Only runs of this kind.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Only runs on this dataset.")] = None,
    attack: Annotated[
        str | None, typer.Option(help="Only runs of this attack (name, e.g. gmi).")
    ] = None,
    defense: Annotated[
        str | None, typer.Option(help="Only runs of this defense (name, e.g. mid).")
    ] = None,
    status: Annotated[str | None, typer.Option(help="Only done or failed runs.")] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, json or csv (one row per run).")
    ] = "table",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Show the stored runs, filtered (filters combine with AND), with the human success
    rate of every cell people judged (`invbench judge`)."""
    from invbench.bench.store import STATUSES
    from invbench.errors import ConfigError
    from invbench.report.tables import filter_runs, runs_csv

    fmt = "json" if as_json else fmt
    if fmt not in ("table", "json", "csv"):
        raise ConfigError(f"--format must be table, json or csv, got '{fmt}'")
    if status is not None and status not in STATUSES:
        raise ConfigError(f"--status must be one of {', '.join(STATUSES)}, got '{status}'")
    from invbench.metrics.human import human_rates

    store = _open_store(out)
    try:
        rows = store.runs(kind=kind)
        judged = human_rates(store)["cells"] if store.judgements() else {}
    finally:
        store.close()
    rows = filter_runs(rows, dataset=dataset, attack=attack, defense=defense, status=status)
    for row in rows:  # people's verdicts (invbench judge) beside the automatic ones
        if int(row["id"]) in judged:
            row["human"] = judged[int(row["id"])]
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(runs_csv(rows))
        return
    from invbench.report.tables import runs_table

    _out.print(runs_table(rows))


analyze = typer.Typer(
    help="Analyses of a benchmark's targets (Fisher information: TL-DMI's evidence).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(analyze, name="analyze")


@analyze.command("fisher")
def analyze_fisher(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    resolution: ResolutionOpt = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(help="The target: a defense NAME or NAME:key=value,... of the spec."),
    ] = None,
    attack: Annotated[
        list[str] | None,
        typer.Option(help="The attack whose stored reconstructions of the target are used."),
    ] = None,
    label: LabelOpt = None,
    private_class: PrivateClassOpt = None,
    public_class: PublicClassOpt = None,
    per_label: PerLabelOpt = None,
    max_per_class: MaxPerClassOpt = None,
    epochs: EpochsOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Your own target instead: safetensors weights of an invbench "
                     "classifier (with --arch and --reconstructions)."),
    ] = None,
    arch: Annotated[
        str | None, typer.Option(help="Architecture of --model (e.g. cnn-m).")
    ] = None,
    reconstructions: Annotated[
        Path | None,
        typer.Option(help="safetensors with 'images' (N,C,H,W) in [0,1] and 'labels' (N,) "
                     "instead of the stored cell's."),
    ] = None,
    samples: Annotated[
        int, typer.Option(help="Private training images per class for the classification task.")
    ] = 100,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", "-o", help="Where to write the plot (.png, .svg, .pdf). Default: "
                     "next to the reconstructions, NAME-fisher.png."),
    ] = None,
    quiet: QuietOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Per-layer Fisher information: classification (private images) vs inversion.

    TL-DMI's analysis (Ho et al., CVPR 2024): the mean diagonal Fisher information of
    log p(y|x) per layer of a target, on private training images and on an attack's
    reconstructions of that target. Pick the cell with the spec and flags of `invbench run`
    (one --defense, one --attack) or give --model/--arch/--reconstructions.
    """
    from invbench.bench.analyze import check_fisher_inputs, fisher_for_cell
    from invbench.report.plots import fisher_plot

    fields = _spec_fields(
        dataset=dataset, data_dir=data_dir, resolution=resolution, defense=defense,
        attack=attack, label=label, private_class=private_class, public_class=public_class,
        per_label=per_label, max_per_class=max_per_class, epochs=epochs, seed=seed,
        device=device, out=out,
    )
    spec = _make_spec(config, fields)
    check_fisher_inputs(spec, model=model, arch=arch, reconstructions=reconstructions,
                        plot=plot, samples=samples)
    report = fisher_for_cell(spec, model_file=model, arch=arch, reconstructions=reconstructions,
                             samples=samples, quiet=quiet)
    rec = report.reconstructions
    path = plot if plot is not None else rec.with_name(f"{rec.stem}-fisher.png")
    fisher_plot(path, report.result, title=f"Fisher information: {report.target}"
                + (f" x {report.attack}" if report.attack != "-" else ""))
    data = {**report.to_dict(), "plot": str(path)}
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    from invbench.report.tables import fisher_table

    acc = "" if report.target_accuracy is None else f", accuracy {report.target_accuracy:.1%}"
    _out.print(fisher_table(data, title=f"{report.target}{acc} x {report.attack}"))
    _out.print(f"plot: {path}", highlight=False)



def _open_rows(out: Path) -> list[dict[str, Any]]:
    """Every stored benchmark run of the store in ``out`` (a missing store is one line)."""
    with _open_store(out) as store:
        return store.runs(kind="benchmark")


@analyze.command("tradeoff")
def analyze_tradeoff(
    out: StoreOutOpt = Path("runs"),
    metric: Annotated[str, typer.Option(help="Attack metric on the curves.")] = "success",
    png_dir: Annotated[
        Path | None, typer.Option(help="Write one PNG per dataset and attack here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Privacy-utility curves of the stored cells: per defense and strength, the mean over
    seeds of target accuracy and the attack's metric with 95% intervals (t over >= 3 seeds,
    else a bootstrap over reconstructions), the Pareto front, the metric at 1/3/5 points of
    accuracy loss and the area under each defense's curve.
    """
    from invbench.analysis.tradeoff import tradeoff
    from invbench.errors import ConfigError
    from invbench.report.plots import curve_plot

    if png_dir is not None and png_dir.exists() and not png_dir.is_dir():
        raise ConfigError(f"--png-dir '{png_dir}' exists and is not a directory")
    curves = tradeoff(_open_rows(out), metric=metric)
    plots = []
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for c in curves:
            # tradeoff-DATASET-ATTACK.png, numbered where one attack ran with several settings
            stem = f"tradeoff-{c.dataset}-{c.attack.split('(')[0]}"
            stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in stem)
            name, n = f"{stem}.png", 1
            while any(Path(p).name == name for p in plots):
                n += 1
                name = f"{stem}-{n}.png"
            plots.append(str(curve_plot(png_dir / name, c)))
    if as_json:
        data = [{**c.to_dict(), "plot": plots[i] if plots else None}
                for i, c in enumerate(curves)]
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    from invbench.report.tables import tradeoff_tables

    for table in tradeoff_tables(curves):
        _out.print(table)
    for path in plots:
        _out.print(f"plot: {path}", highlight=False)


@analyze.command("accuracy-success")
def analyze_accuracy_success(
    out: StoreOutOpt = Path("runs"),
    metric: Annotated[str, typer.Option(help="Attack metric to correlate.")] = "success",
    defense: Annotated[str, typer.Option(help="Only cells of this defense.")] = "none",
    plot: Annotated[
        Path | None, typer.Option("--plot", "-o", help="Write the scatter plot here (.png).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False,
) -> None:
    """Does attack success rise with the target's accuracy (MIBench)? Spearman's rank
    correlation over the stored cells of one defense (e.g. a sweep over train.arch and
    train.epochs), per attack.
    """
    from invbench.analysis.tradeoff import accuracy_vs_success
    from invbench.report.plots import correlation_plot

    corrs = accuracy_vs_success(_open_rows(out), metric=metric, defense=defense)
    if plot is not None:
        correlation_plot(plot, corrs)
    if as_json:
        data = {"correlations": [c.to_dict() for c in corrs],
                "plot": None if plot is None else str(plot)}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    from invbench.report.tables import correlation_table

    _out.print(correlation_table(corrs))
    if plot is not None:
        _out.print(f"plot: {plot}", highlight=False)


@app.command()
def serve(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    resolution: ResolutionOpt = None,
    defense: Annotated[
        list[str] | None,
        typer.Option(help="The target to serve: one defense NAME or NAME:key=value,...; it "
                     "comes from the run's cache (trained and cached if missing)."),
    ] = None,
    private_class: PrivateClassOpt = None,
    public_class: PublicClassOpt = None,
    max_per_class: MaxPerClassOpt = None,
    epochs: EpochsOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    out: OutOpt = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Serve your own model instead: safetensors weights of an invbench "
                     "classifier (with --arch; the dataset flags give its classes and shape)."),
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture of --model.")] = None,
    level: Annotated[
        str, typer.Option(help="What a query returns: black-box (probabilities) or label-only.")
    ] = "black-box",
    output: Annotated[
        str | None,
        typer.Option(help="Output processing of the answers, NAME or NAME:key=value,... "
                     "(top-k, round, noise)."),
    ] = None,
    budget: Annotated[int | None, typer.Option(help="Most queries served in all.")] = None,
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8765,
    quiet: QuietOpt = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the endpoint's URL and info as one JSON line.")
    ] = False,
) -> None:
    """Serve a target over HTTP on this machine until interrupted (Ctrl-C).

    The endpoint answers invbench query messages (POST) with probabilities or labels after
    the output processing, counts the queries and enforces --budget; GET / shows its info.
    Attack it with `invbench run --target-url URL` or BlackBox(HttpChannel(URL)).
    """
    from invbench.bench.analyze import check_target_choice, resolve_target, spec_protocol
    from invbench.config import build_method, check_device, parse_method
    from invbench.errors import ConfigError
    from invbench.serving.http import check_loopback_host, make_server, server_url
    from invbench.serving.service import SERVED_LEVELS, TargetService

    fields = _spec_fields(
        dataset=dataset, data_dir=data_dir, resolution=resolution, defense=defense,
        attack=None, label=None, private_class=private_class, public_class=public_class,
        per_label=None, max_per_class=max_per_class, epochs=epochs, seed=seed,
        device=device, out=out,
    )
    spec = _make_spec(config, fields)
    if level not in SERVED_LEVELS:
        raise ConfigError(f"--level must be one of {', '.join(SERVED_LEVELS)}, got '{level}'")
    check_target_choice(spec, model=model, arch=arch, what="the target to serve")
    if budget is not None and budget < 1:
        raise ConfigError(f"--budget must be >= 1, got {budget}")
    check_loopback_host(host)
    processing = build_method("output", parse_method(output)) if output else None
    check_device(spec.device)
    protocol = spec_protocol(spec)
    target, label, key = resolve_target(spec, protocol, model_file=model, arch=arch, quiet=quiet)
    from invbench.access import served_target_key

    service = TargetService(
        target, level=level, num_classes=protocol.num_classes,
        image_shape=protocol.image_shape, output=processing,  # type: ignore[arg-type]
        budget=budget, target_key=served_target_key(key, processing),  # type: ignore[arg-type]
        seed=spec.seed,
    )
    server = make_server(service, host=host, port=port, quiet=quiet)
    url = server_url(server)
    if as_json:
        sys.stdout.write(json.dumps({"url": url, "target": label, **service.info()}) + "\n")
        sys.stdout.flush()
    from invbench.progress import log

    log(f"serving [bold]{label}[/] ({level}) at {url}  (Ctrl-C stops)", quiet=quiet)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log(f"served {service.queries} queries", quiet=quiet)



@app.command()
def report(
    out: StoreOutOpt = Path("runs"),
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The HTML file to write. Default: OUT/report.html."),
    ] = None,
    quiet: QuietOpt = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"report": path, "cells": n}.')
    ] = False,
) -> None:
    """Write a self-contained HTML report of the store (one file, no network).

    The results table (sortable), the privacy-utility plots, the human judging results
    (`invbench judge`) and, per cell, each class's private images beside its reconstructions.
    """
    from invbench.errors import ConfigError
    from invbench.progress import log
    from invbench.report.html import write_report

    store = _open_store(out)
    try:
        rows = store.runs(kind="benchmark")
        judgements = store.judgements()
    finally:
        store.close()
    if not rows:
        raise ConfigError(f"no benchmark cells in '{store.path}': run `invbench run --out "
                          f"{out}` first")
    path = output if output is not None else out / "report.html"
    if path.is_dir():
        raise ConfigError(f"--output '{path}' is a folder; give a file name (report.html)")
    from invbench.report.plots import tradeoff_figures

    figures = tradeoff_figures(rows)
    log(f"writing the report of {len(rows)} cells ...", quiet=quiet)
    write_report(path, rows, figures=figures, judgements=judgements)
    if as_json:
        sys.stdout.write(json.dumps({"report": str(path), "cells": len(rows)}) + "\n")
    else:
        sys.stdout.write(f"{path}\n")


@app.command()
def judge(
    out: StoreOutOpt = Path("runs"),
    cells: Annotated[
        str | None,
        typer.Option(help="Run ids of the cells to judge, comma-separated (see `invbench "
                     "runs`). Default: every done inversion cell."),
    ] = None,
    judge_name: Annotated[
        str, typer.Option("--judge", help="Who is judging (answers are stored per judge).")
    ] = "anonymous",
    port: Annotated[int, typer.Option(help="Port (0: any free port).")] = 8766,
    host: Annotated[str, typer.Option(help="Loopback address to bind.")] = "127.0.0.1",
    controls: Annotated[
        float, typer.Option(help="Share of items that are controls with a known answer, in "
                            "[0, 1).")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the controls and the order.")] = 0,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-browser", help="Open the page in a browser.")
    ] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="Print the human rates so far; serve nothing.")
    ] = False,
    quiet: QuietOpt = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the URL (or, with --summary, the rates) as "
                           "one JSON line.")
    ] = False,
) -> None:
    """Judge reconstructions yourself in the browser (served on this machine until Ctrl-C).

    Protocol of Ho et al. (arXiv 2505.03519): one item at a time, image A beside a set B of
    private training images of one class: "Is image A the same class/identity as the images
    in set B?" yes / no / unsure (keys y / n / u). Items are the reconstructions plus control
    items with a known answer (held-out private images of the class or of another class).
    Every answer is stored at once; reopening the page continues. `--summary` prints human
    success per attack and cell, each judge's accuracy on controls and the automatic
    decisions' false-positive / false-negative rates against people.
    """
    from invbench.report.judge import (
        JudgeSession,
        check_controls,
        check_judge_name,
        judge_url,
        load_judge_cells,
        make_judge_server,
        parse_cells,
    )
    from invbench.serving.http import check_loopback_host

    if summary:
        from invbench.metrics.human import human_rates

        store = _open_store(out)
        try:
            rates = human_rates(store)
        finally:
            store.close()
        if as_json:
            sys.stdout.write(json.dumps(rates) + "\n")
            return
        if not rates["answers"]:
            _out.print(f"no judgements yet in {out / 'invbench.sqlite'}: run `invbench judge "
                       f"--out {out}`", highlight=False)
            return
        from invbench.report.judge import human_tables

        for table in human_tables(rates):
            _out.print(table)
        return
    judge_name = check_judge_name(judge_name)
    check_controls(controls)
    check_loopback_host(host)
    if not 0 <= port <= 65535:
        from invbench.errors import ConfigError

        raise ConfigError(f"--port must be 0..65535, got {port}")
    ids = parse_cells(cells)
    store = _open_store(out)
    try:
        rows = store.runs(kind="benchmark")
    finally:
        store.close()
    chosen = load_judge_cells(rows, cell_ids=ids, quiet=quiet)
    from invbench.bench.store import Store

    session = JudgeSession(functools.partial(Store, store.path), chosen, controls=controls,
                           seed=seed, judge=judge_name)
    try:
        server = make_judge_server(session, host=host, port=port, quiet=True)
    except OSError as exc:
        from invbench.errors import ConfigError

        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick "
                          "another --port (0: any free port)") from None
    url = judge_url(server, judge=judge_name)
    if as_json:
        sys.stdout.write(json.dumps({"url": url, "judge": judge_name, "items": len(session.items),
                                     "cells": [c.run_id for c in chosen]}) + "\n")
    else:
        sys.stdout.write(url + "\n")
    sys.stdout.flush()
    from invbench.progress import log

    progress = session.progress(judge_name)
    log(f"judging {len(chosen)} cells ({progress['answered']} of {progress['total']} items "
        f"answered by {judge_name}) at {url}  (Ctrl-C stops; answers are saved as you go)",
        quiet=quiet)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        progress = session.progress(judge_name)
        log(f"{judge_name}: {progress['answered']} of {progress['total']} items answered",
            quiet=quiet)


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
