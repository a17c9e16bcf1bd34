"""The benchmark runner: spec -> protocol -> targets -> attacks -> metrics -> store.

The one place attacks and defenses meet. For every (defense, attack) cell it trains (or loads
from the cache) the defended target, hands the attack exactly the access object its threat
model declares, evaluates the reconstructions with the independent evaluator next to the two
references (held-out private images; uniform noise), and records the finished run in the
store in one transaction. A cell whose resolved spec is already in the store is not re-run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from invbench import __version__
from invbench.access import make_access
from invbench.attacks.base import Attack
from invbench.types import Reconstruction
from invbench.bench.cache import Cache, atomic_path
from invbench.bench.store import Store, spec_hash, versions
from invbench.config import RunSpec, build_method, check_device
from invbench.data import load_protocol
from invbench.data.protocol import Protocol
from invbench.defenses.base import Defense
from invbench.errors import ConfigError, QueryBudgetExceeded
from invbench.metrics import (
    Evaluator,
    evaluate,
    reference_reconstructions,
    target_accuracy,
    train_evaluator,
)
from invbench.progress import log
from invbench.report.grids import save_comparison_grid

#: Bumped when the meaning of a stored result changes, so old rows are not reused.
RESULT_VERSION = 1


@dataclass
class RunContext:
    """What is shared by every cell of one benchmark invocation."""

    spec: RunSpec
    protocol: Protocol
    device: torch.device
    cache: Cache
    store: Store
    quiet: bool
    evaluator: Evaluator | None = None
    targets: dict[str, tuple[nn.Module, float]] = field(default_factory=dict)
    references: dict[str, dict[str, float]] | None = None


def _labels(spec: RunSpec, protocol: Protocol) -> list[int]:
    labels = spec.labels if spec.labels is not None else list(range(protocol.num_classes))
    bad = [v for v in labels if v >= protocol.num_classes]
    if bad:
        raise ConfigError(
            f"labels {bad} out of range: the protocol has {protocol.num_classes} private classes"
        )
    return labels


def cell_spec(ctx: RunContext, defense: Defense, attack: Attack) -> dict[str, Any]:
    """The resolved spec of one (defense, attack) cell: everything its numbers depend on."""
    s = ctx.spec
    return {
        "result_version": RESULT_VERSION,
        "dataset": s.dataset,
        "protocol": ctx.protocol.describe(),
        "resolution": s.resolution,
        "train": s.train.model_dump(),
        "evaluator": s.evaluator.model_dump(),
        "defense": defense.name,
        "defense_params": defense.get_params(),
        "attack": attack.name,
        "attack_params": attack.get_params(),
        "labels": _labels(s, ctx.protocol),
        "per_label": s.per_label,
        "budget": s.budget,
        "seed": s.seed,
        "device": ctx.device.type,
    }


def method_label(method: Defense | Attack) -> str:
    """``mid(beta=0.1)``: the name and only the parameters that differ from their defaults."""
    fields = type(method).Params.model_fields
    changed = {k: v for k, v in method.get_params().items() if v != fields[k].default}
    if not changed:
        return method.name
    return f"{method.name}(" + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) + ")"


def _target(ctx: RunContext, defense: Defense) -> tuple[nn.Module, float]:
    """The trained target for ``defense`` (from the content-addressed cache when possible)."""
    label = f"{defense.name}:{sorted(defense.get_params().items())}"
    if label in ctx.targets:
        return ctx.targets[label]
    s = ctx.spec
    torch.manual_seed(s.seed)  # the same initial weights as Defense.train(seed=s.seed)
    model = defense.build(
        arch=s.train.arch,
        image_shape=ctx.protocol.image_shape,
        num_classes=ctx.protocol.num_classes,
    )
    parts = {
        "protocol": ctx.protocol.fingerprint(),
        "train": s.train.model_dump(),
        "defense": defense.name,
        "defense_params": defense.get_params(),
        "seed": s.seed,
    }

    def create() -> dict[str, Any]:
        defense.fit(
            model, ctx.protocol, config=s.train, seed=s.seed, device=ctx.device, quiet=ctx.quiet
        )
        return {"defense": defense.name}

    _meta, hit = ctx.cache.get_or_create("target", parts, {"model": model}, create)
    model = model.to(ctx.device).eval()
    torch.manual_seed(s.seed)
    acc = target_accuracy(model, ctx.protocol.private_test, device=ctx.device)
    log(
        f"target [bold]{defense.name}[/] {'(cached) ' if hit else ''}"
        f"private-test accuracy {acc:.1%}",
        quiet=ctx.quiet,
    )
    ctx.targets[label] = (model, acc)
    return model, acc


def _evaluator(ctx: RunContext) -> Evaluator:
    if ctx.evaluator is None:
        e = ctx.spec.evaluator
        ctx.evaluator = train_evaluator(
            ctx.protocol,
            arch=e.arch,
            seed=ctx.spec.seed,
            epochs=e.epochs,
            device=ctx.device,
            cache=ctx.cache,
            quiet=ctx.quiet,
        )
        log(
            f"evaluator [bold]{ctx.evaluator.arch}[/] private-test accuracy "
            f"{ctx.evaluator.accuracy:.1%}",
            quiet=ctx.quiet,
        )
    return ctx.evaluator


def _references(ctx: RunContext) -> dict[str, dict[str, float]]:
    if ctx.references is None:
        ev = _evaluator(ctx)
        refs = reference_reconstructions(
            ctx.protocol, _labels(ctx.spec, ctx.protocol), ctx.spec.per_label, seed=ctx.spec.seed
        )
        ctx.references = {name: evaluate(rec, ctx.protocol, ev) for name, rec in refs.items()}
    return ctx.references


def _save_artifacts(ctx: RunContext, rec: Reconstruction, name: str) -> dict[str, str]:
    out_dir = ctx.spec.out / ctx.spec.dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = out_dir / f"{name}.png"
    p = ctx.protocol.private_train
    per_class = [
        torch.nonzero(p.y == c).flatten()[: min(4, ctx.spec.per_label)]
        for c in sorted(set(rec.labels.tolist()))
    ]
    idx = torch.cat(per_class)
    save_comparison_grid(
        grid,
        private=p.x[idx],
        private_labels=p.y[idx],
        recon=rec.images,
        recon_labels=rec.labels,
        class_names=list(ctx.protocol.class_names),
    )
    tensors = out_dir / f"{name}.safetensors"
    with atomic_path(tensors) as tmp:
        save_file(
            {
                "images": rec.images.contiguous(),
                "labels": rec.labels.contiguous(),
                "scores": rec.scores.contiguous(),
            },
            str(tmp),
        )
    return {"grid": str(grid), "reconstructions": str(tensors)}


def run_cell(ctx: RunContext, defense: Defense, attack: Attack) -> dict[str, Any]:
    """Run one (defense, attack) cell, or return its stored result; record it when new."""
    cspec = cell_spec(ctx, defense, attack)
    key = spec_hash(cspec)
    stored = ctx.store.find(key)
    if stored is not None:
        log(
            f"[dim]{defense.name} x {attack.name}: already in the store, skipped[/]",
            quiet=ctx.quiet,
        )
        return {**stored, "cached": True}

    t0 = time.perf_counter()
    try:
        return _execute(ctx, defense, attack, cspec, key, t0)
    except QueryBudgetExceeded as exc:
        # The attack ran out of queries: a finished run whose outcome is a failure. Record it
        # (find() never returns failed runs, so a later run with a larger budget retries it).
        ctx.store.record(
            spec_hash=key,
            kind="benchmark",
            spec=cspec,
            result={"error": str(exc), "defense": defense.name, "attack": attack.name},
            metrics={},
            artifacts={},
            seconds=time.perf_counter() - t0,
            status="failed",
        )
        raise


def _execute(
    ctx: RunContext,
    defense: Defense,
    attack: Attack,
    cspec: dict[str, Any],
    key: str,
    t0: float,
) -> dict[str, Any]:
    s = ctx.spec
    model, acc = _target(ctx, defense)
    torch.manual_seed(s.seed)
    attack.prepare(
        ctx.protocol.public,
        image_shape=ctx.protocol.image_shape,
        cache=ctx.cache,
        device=ctx.device,
        seed=s.seed,
        quiet=ctx.quiet,
    )
    access = make_access(
        attack.access,
        model,
        num_classes=ctx.protocol.num_classes,
        image_shape=ctx.protocol.image_shape,
        budget=s.budget,
    )
    torch.manual_seed(s.seed)
    rec = attack.invert(access, _labels(s, ctx.protocol), s.per_label, seed=s.seed, quiet=ctx.quiet)
    metrics = evaluate(rec, ctx.protocol, _evaluator(ctx))
    refs = _references(ctx)
    seconds = time.perf_counter() - t0
    name = f"{defense.name}-{attack.name}-{key[:10]}"
    artifacts = _save_artifacts(ctx, rec, name)
    result = {
        "dataset": s.dataset,
        "defense": defense.name,
        "defense_params": defense.get_params(),
        "attack": attack.name,
        "attack_params": attack.get_params(),
        "defense_label": method_label(defense),
        "attack_label": method_label(attack),
        "seed": s.seed,
        "target_accuracy": acc,
        "evaluator_accuracy": _evaluator(ctx).accuracy,
        "metrics": metrics,
        "references": refs,
        "queries": rec.queries,
        "seconds": round(seconds, 3),
        "artifacts": artifacts,
    }
    all_metrics = {
        "attack": metrics,
        "target": {"accuracy": acc},
        **{f"ref_{k}": v for k, v in refs.items()},
    }
    ctx.store.record(
        spec_hash=key,
        kind="benchmark",
        spec={**cspec, "versions": versions(), "invbench": __version__},
        result=result,
        metrics=all_metrics,
        artifacts=artifacts,
        seconds=seconds,
    )
    return {**result, "cached": False}


def run_benchmark(spec: RunSpec, *, quiet: bool = False) -> list[dict[str, Any]]:
    """Run every (defense, attack) cell of ``spec``; returns one result dict per cell.

    ``spec`` must be validated (:func:`invbench.config.make_spec` / ``load_spec``); the data is
    loaded and checked before the store is opened, so bad input writes nothing.
    """
    device = check_device(spec.device)
    defenses = [build_method("defense", m) for m in spec.defenses]
    attacks = [build_method("attack", m) for m in spec.attacks]
    protocol = load_protocol(
        spec.dataset,
        data_dir=spec.data_dir,
        resolution=spec.resolution,
        private_classes=spec.protocol.private_classes,
        public_classes=spec.protocol.public_classes,
        test_fraction=spec.protocol.test_fraction,
        seed=spec.seed,
    )
    _labels(spec, protocol)
    log(
        f"protocol [bold]{protocol.dataset}[/]: {protocol.num_classes} private classes "
        f"{list(protocol.private_classes)}, {len(protocol.private_train)} train / "
        f"{len(protocol.private_test)} test images; public {len(protocol.public)} images",
        quiet=quiet,
    )
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "invbench.sqlite")
    ctx = RunContext(
        spec=spec,
        protocol=protocol,
        device=device,
        cache=Cache(out / "cache"),
        store=store,
        quiet=quiet,
    )
    results = []
    try:
        for defense in defenses:
            for attack in attacks:
                results.append(run_cell(ctx, defense, attack))  # type: ignore[arg-type]
    finally:
        store.close()
    return results
