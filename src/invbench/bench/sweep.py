"""Sweeps: a grid of benchmark cells run in this process, a local process pool, or on Ray.

The driver (:func:`run_sweep`) owns the SQLite store: it keys every cell exactly as
``invbench run`` does (:func:`~invbench.bench.runner.resolved_cell_spec`), skips the ones
the store holds, sends the rest to a backend and writes each finished cell's record when it
comes back. Workers never open the store; they run their cell with
:func:`~invbench.bench.runner.run_benchmark` and a :class:`~invbench.bench.runner.Collector`
and share only the ``--out`` folder: the content cache (whose per-key locks make each
target, prior and evaluator be built once however many workers ask for it) and the cells'
image and tensor artifacts (named by the cell's hash).

Resuming: the store records a cell in one transaction when it finishes, so a sweep killed
with SIGKILL loses only the cells in flight; running the same command again runs only what
the store lacks. A failed cell is recorded as ``failed`` and retried by the next run.

Backends:

- ``local`` with ``workers=1``: cells run one after another in this process;
- ``local`` with ``workers=N``: a pool of N fresh interpreters (``spawn``);
- ``ray``: each cell is a Ray task (``num_cpus`` = the sweep's ``threads``) on the cluster at
  ``address`` (``ray.init(address=...)``; ``"local"`` starts a private instance on this
  machine with ``workers`` CPUs). Every node must see the same ``--out`` path (a shared
  filesystem with ``flock``) and have invbench and its data installed.

Every cell sets ``torch.set_num_threads(threads)`` (and ``OMP_NUM_THREADS`` for the query
workers it starts), whatever the backend, so the backends give the same numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from invbench.bench.grid import Sweep
from invbench.bench.runner import (
    RESULT_VERSION,
    Collector,
    check_against_protocol,
    load_spec_protocol,
    method_label,
    resolved_cell_spec,
)
from invbench.bench.store import Store, spec_hash
from invbench.config import RunSpec, build_method, check_device
from invbench.errors import ConfigError
from invbench.progress import log, progress_bar

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Cell:
    """One cell of a sweep: its run spec (one defense, one attack, one seed) and its key."""

    spec: RunSpec
    key: str
    label: str
    #: the cell's target (protocol, training, defense, seed): cells sharing it share a build
    target: str
    #: what every target of one protocol and seed shares (evaluators, references, priors)
    shared: str = ""


def plan(sweep: Sweep) -> list[Cell]:
    """Key every cell (loading each distinct protocol once) and check it can run.

    Every defense, evaluator and attack is built for its protocol's image shape before
    anything is written (:func:`~invbench.bench.runner.check_against_protocol`).
    """
    protocols: dict[str, Any] = {}
    cells = []
    for spec in sweep.cells:
        pkey = spec.model_dump_json(include={"dataset", "data_dir", "resolution", "protocol",
                                             "seed"})
        if pkey not in protocols:
            protocols[pkey] = load_spec_protocol(spec)
        protocol = protocols[pkey]
        device = check_device(spec.device)
        defense = build_method("defense", spec.defenses[0])
        attack = build_method("attack", spec.attacks[0])
        try:
            check_against_protocol(spec, protocol, [defense], [attack])  # type: ignore[list-item]
        except ConfigError as exc:
            raise ConfigError(f"{sweep.source}: {exc}") from None
        cspec = resolved_cell_spec(spec, protocol, device, defense, attack)  # type: ignore[arg-type]
        target = spec_hash({"protocol": cspec["protocol"], "train": cspec["train"],
                            "defense": cspec["defense"], "params": cspec["defense_params"],
                            "seed": spec.seed, "v": RESULT_VERSION})
        label = (f"{method_label(defense)} x {method_label(attack)} "  # type: ignore[arg-type]
                 f"seed {spec.seed}")
        shared = spec_hash({"protocol": cspec["protocol"], "evaluator": cspec["evaluator"],
                            "seed": spec.seed})
        cells.append(Cell(spec=spec, key=spec_hash(cspec), label=label, target=target,
                          shared=shared))
    trains = {(c.spec.train.arch, c.spec.train.epochs) for c in cells}
    if len(trains) > 1:  # a sweep over targets: say which one each cell attacks
        cells = [replace(
            c, label=f"{c.label} ({c.spec.train.arch}, {c.spec.train.epochs} ep)")
            for c in cells]
    return cells


def _round_robin(cells: list[Cell], key: Callable[[Cell], str]) -> list[Cell]:
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(key(c), []).append(c)
    rounds = max((len(g) for g in groups.values()), default=0)
    return [g[i] for i in range(rounds) for g in groups.values() if i < len(g)]


def schedule(cells: list[Cell]) -> list[Cell]:
    """Order cells so concurrent workers build different things instead of waiting.

    The first cell of each target comes before any second one (a target's later cells load
    it from the cache), and consecutive cells alternate between protocols and seeds (each
    builds its own evaluators, references and priors). Whatever the order, the cache's
    per-key locks build each entry once.
    """
    return _round_robin(_round_robin(cells, lambda c: c.target), lambda c: c.shared)


def run_cell_task(spec_json: str, threads: int) -> list[dict[str, Any]]:
    """Run one cell (a JSON run spec) in this process; return its store records.

    What every backend executes: sets the thread count, runs the cell against a
    :class:`Collector` and returns the records for the driver to write.
    """
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)  # the query worker processes inherit it
    torch.set_num_threads(threads)
    spec = RunSpec.model_validate_json(spec_json)
    collector = Collector()
    from invbench.bench.runner import run_benchmark

    run_benchmark(spec, quiet=True, store=collector)
    return collector.records


def _local(cells: list[Cell], *, workers: int, threads: int
           ) -> Iterator[tuple[Cell, list[dict[str, Any]] | BaseException]]:
    """Cells run in this process (``workers == 1``) or a spawn-started process pool."""
    if workers == 1:
        for c in cells:
            try:
                yield c, run_cell_task(c.spec.model_dump_json(), threads)
            except Exception as exc:  # noqa: BLE001 - reported per cell, the sweep goes on
                yield c, exc
        return
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"))
    try:
        # submit only as many as can run, so an interrupted sweep has few cells in flight
        queue = list(cells)
        running: dict[Any, Cell] = {}
        while queue or running:
            while queue and len(running) < workers:
                c = queue.pop(0)
                running[pool.submit(run_cell_task, c.spec.model_dump_json(), threads)] = c
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                c = running.pop(fut)
                exc = fut.exception()
                yield c, (exc if exc is not None else fut.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _ray(cells: list[Cell], *, address: str, workers: int, threads: int
         ) -> Iterator[tuple[Cell, list[dict[str, Any]] | BaseException]]:
    """Each cell a Ray task with ``num_cpus=threads`` on the cluster at ``address``."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers * threads, include_dashboard=False,
                     _node_ip_address="127.0.0.1", log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        started = True
    try:
        task = ray.remote(num_cpus=threads, max_retries=0)(run_cell_task)
        refs = {task.remote(c.spec.model_dump_json(), threads): c for c in cells}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    yield refs[ref], ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a task error: the cell failed
                    yield refs[ref], getattr(exc, "cause", None) or exc
    finally:
        if started:
            ray.shutdown()


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--backend ray needs Ray: pip install 'invbench[ray]'") from None
    return ray


def check_backend(backend: str, *, workers: int, address: str | None) -> None:
    """Validate the backend options before any work (one line naming the bad option)."""
    if backend not in BACKENDS:
        raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if backend == "ray":
        if not address:
            raise ConfigError("--backend ray needs --address (a cluster's HOST:PORT, "
                              "ray://HOST:PORT, or 'local' for a private instance)")
        import_ray()
    elif address:
        raise ConfigError("--address is for --backend ray")


def _record(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    """Write one worker record to the store; return its result row."""
    store.record(**record)
    return {**record["result"], "seconds": record["seconds"], "cached": False}


def run_sweep(
    sweep: Sweep,
    *,
    workers: int = 1,
    backend: str = "local",
    address: str | None = None,
    quiet: bool = False,
    on_cell: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every cell of ``sweep`` the store lacks; return one result row per cell.

    Rows of cells already done come from the store (``cached: True``). A cell whose worker
    raised (a crash the runner could not record) comes back as ``status: failed`` and is
    recorded so. ``on_cell`` is called with each finished row as it arrives.
    """
    check_backend(backend, workers=workers, address=address)
    cells = plan(sweep)
    out = sweep.out
    out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "invbench.sqlite")
    rows: dict[str, dict[str, Any]] = {}
    try:
        todo = []
        for c in cells:
            stored = store.find(c.key)
            if stored is not None:
                rows[c.key] = {**stored, "cached": True}
            else:
                todo.append(c)
        todo = schedule(todo)
        cached = len(cells) - len(todo)
        log(f"sweep [bold]{sweep.source}[/]: {len(cells)} cells, {cached} in the store, "
            f"{len(todo)} to run ({backend}, {workers} worker{'s' * (workers > 1)}, "
            f"{sweep.threads} thread{'s' * (sweep.threads > 1)} each)", quiet=quiet)
        counts = {"done": 0, "failed": 0, "cached": cached}
        t0 = time.perf_counter()
        runner = (_ray(todo, address=address or "local", workers=workers,
                       threads=sweep.threads) if backend == "ray"
                  else _local(todo, workers=workers, threads=sweep.threads))
        with progress_bar(len(todo), "sweep", quiet=quiet) as bar:
            bar.update(**counts)
            for cell, got in runner:
                if isinstance(got, BaseException):
                    row = _worker_failed(store, cell, got)
                else:
                    for record in got:
                        row = _record(store, record)
                    if not got:  # pragma: no cover - a cell always yields its record
                        row = _worker_failed(store, cell, RuntimeError("no result"))
                rows[cell.key] = row
                counts["failed" if row.get("status") == "failed" else "done"] += 1
                n = counts["done"] + counts["failed"]
                if row.get("status") == "failed":
                    log(f"[{n}/{len(todo)}] [red]{cell.label} failed:[/] {row.get('error')}",
                        quiet=quiet)
                else:  # one line per cell: what a log file of a long sweep shows
                    m = row.get("metrics") or {}
                    shown = "".join(f", {k} {m[k]:.2f}" for k in ("success", "acc1")
                                    if isinstance(m.get(k), int | float))
                    log(f"[{n}/{len(todo)}] {cell.label}: target accuracy "
                        f"{row.get('target_accuracy', float('nan')):.3f}{shown} "
                        f"[dim]{row.get('seconds', 0.0):.0f} s[/]", quiet=quiet)
                bar.advance()
                bar.update(**counts)
                if on_cell is not None:
                    on_cell(row)
        log(f"sweep: {counts['done']} done, {counts['failed']} failed, {cached} from the "
            f"store [dim]{time.perf_counter() - t0:.0f} s[/]", quiet=quiet)
    finally:
        store.close()
    return [rows[c.key] for c in cells if c.key in rows]


def _worker_failed(store: Store, cell: Cell, exc: BaseException) -> dict[str, Any]:
    """Record a cell whose worker died or raised outside the runner's own handling."""
    from invbench import __version__
    from invbench.bench.store import versions

    message = " ".join(str(exc).split()) or type(exc).__name__
    s = cell.spec
    result = {"status": "failed", "error": f"{type(exc).__name__}: {message}",
              "kind": "inversion", "dataset": s.dataset, "defense": s.defenses[0].name,
              "defense_params": s.defenses[0].params, "attack": s.attacks[0].name,
              "attack_params": s.attacks[0].params, "defense_label": s.defenses[0].label,
              "attack_label": s.attacks[0].label, "seed": s.seed}
    store.record(spec_hash=cell.key, kind="benchmark",
                 spec={"cell": s.model_dump(mode="json"), "versions": versions(),
                       "invbench": __version__},
                 result=result, metrics={}, artifacts={}, seconds=0.0, status="failed")
    return {**result, "seconds": 0.0, "cached": False}
