"""The benchmark runner: spec -> protocol -> targets -> attacks -> metrics -> store.

The one place attacks and defenses meet. The whole spec is checked against the protocol first
(every target, evaluator and attack is built for the protocol's image shape) and only then is
the store opened. For every (defense, attack) cell it trains (or loads from the cache) the
defended target, hands the attack exactly the access object its threat model declares,
judges the reconstructions with the evaluation context (standard, robust and ensemble
evaluators; calibrated ``success``) next to the three references (held-out private images;
uniform noise; adversarial noise made on this target), flags every rate metric the
adversarial reference fools, and records the finished cell in the store in one transaction.

A cell whose resolved spec is already in the store is not re-run. A cell that fails (query
budget exhausted, NaN images, any error of the method) is stored as ``failed`` with its message
and the run goes on; :func:`run_benchmark`'s caller exits non-zero at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from invbench import __version__
from invbench._io import atomic_path
from invbench.access import make_access, served_target_key
from invbench.attacks.base import Attack, UpdateAttack
from invbench.bench.store import Store, spec_hash, versions
from invbench.cache import Cache
from invbench.config import RunSpec, build_method, check_device
from invbench.data import load_protocol
from invbench.data.protocol import Protocol
from invbench.defenses.base import Defense
from invbench.defenses.output import OutputProcessing
from invbench.errors import ConfigError, InvbenchError
from invbench.metrics import EvalContext, Judgement, judge, target_accuracy
from invbench.metrics.base import is_rate
from invbench.metrics.judges import build_judges
from invbench.metrics.references import (
    REFERENCES,
    adversarial_reference,
    noise_reference,
    private_test_reference,
    split_holdout,
)
from invbench.models.stochastic import reseed
from invbench.progress import log
from invbench.report.grids import save_comparison_grid
from invbench.serving.service import TargetService
from invbench.serving.worker import run_isolated
from invbench.training.update import apply_update, draw_label_mixtures, draw_samples
from invbench.types import Reconstruction, UpdateInference

#: Bumped when the meaning of a stored result changes, so old rows are not reused.
RESULT_VERSION = 2

#: a rate metric scoring the adversarial reference this much above noise is being fooled
FOOLED_MARGIN = 0.10


@dataclass
class RunContext:
    """What is shared by every cell of one benchmark invocation."""

    spec: RunSpec
    protocol: Protocol
    device: torch.device
    cache: Cache
    #: where finished cells are recorded: the SQLite :class:`Store`, or a
    #: :class:`Collector` in a sweep's worker (the sweep's driver is the only writer)
    store: Store | Collector
    quiet: bool
    judges: EvalContext | None = None
    ref_index: Tensor | None = None
    targets: dict[str, tuple[nn.Module, float]] = field(default_factory=dict)
    #: the cache key of each trained target (its identity for priors that query it)
    target_keys: dict[str, str] = field(default_factory=dict)
    references: dict[str, dict[str, Judgement]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: the spec's output processing of query answers (None: raw probabilities)
    output: OutputProcessing | None = None


class Collector:
    """Holds the records of finished cells in memory instead of writing a store.

    A sweep's worker runs its cell with one (:func:`run_benchmark`'s ``store``) and returns
    :attr:`records` to the driver, which writes them: the store has one writer. Each record
    is the keyword arguments of :meth:`Store.record` (JSON-able, picklable).
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def find(self, spec_hash: str) -> dict[str, Any] | None:
        """Nothing is found: the driver only sends cells the store lacks."""
        return None

    def record(self, **record: Any) -> int:
        """Keep one finished cell's record."""
        self.records.append(record)
        return len(self.records)

    def close(self) -> None:
        """Nothing to close."""


class EndpointTarget:
    """The target of a run against an endpoint (``target_url``): queries, no module.

    Stands where a defense stands in a cell (``name``, ``get_params``, ``report_``): its
    parameters are the URL and the target identity the endpoint reports, so the store keys a
    cell by what was attacked. Built by :func:`run_benchmark`, which checks the endpoint's
    classes and image shape against the protocol before any work.
    """

    name = "endpoint"

    def __init__(self, url: str) -> None:
        from invbench.serving.channels import HttpChannel
        from invbench.serving.codec import decode, encode
        from invbench.serving.service import raise_if_error

        self.url = url
        _, info = decode(HttpChannel(url).request(encode({}, {"op": "info"})))
        raise_if_error(info)
        self.info = info
        self.report_: dict[str, Any] = {}

    def get_params(self) -> dict[str, Any]:
        """What identifies the attacked target: the URL and the endpoint's target key."""
        return {"url": self.url, "target_key": self.info.get("target_key"),
                "level": self.info.get("level")}

    def label(self) -> str:
        """``endpoint(URL)``."""
        return f"endpoint({self.url})"

    def access(self, level: str) -> Any:
        """A fresh query-only access of ``level`` to the endpoint."""
        from invbench.access import BlackBox, LabelOnly
        from invbench.serving.channels import HttpChannel

        cls = {"black-box": BlackBox, "label-only": LabelOnly}[level]
        return cls(HttpChannel(self.url))

    def check(self, protocol: Protocol, attacks: list[Attack]) -> None:
        """The endpoint fits the protocol and answers what every attack needs."""
        shape = tuple(self.info.get("image_shape", ()))
        k = self.info.get("num_classes")
        if shape != tuple(protocol.image_shape) or k != protocol.num_classes:
            raise ConfigError(
                f"target_url '{self.url}' serves {k} classes of {shape} images; the protocol "
                f"has {protocol.num_classes} classes of {tuple(protocol.image_shape)}"
            )
        for a in attacks:
            if isinstance(a, UpdateAttack):
                raise ConfigError(
                    f"attack '{a.name}' attacks a model's updates, which the runner makes "
                    "itself; it cannot update an endpoint (drop --target-url)"
                )
            if a.access == "black-box" and self.info.get("level") != "black-box":
                raise ConfigError(
                    f"target_url '{self.url}' answers labels only; attack '{a.name}' needs "
                    "probabilities (serve with --level black-box)"
                )


def _labels(spec: RunSpec, protocol: Protocol) -> list[int]:
    labels = spec.labels if spec.labels is not None else list(range(protocol.num_classes))
    bad = [v for v in labels if v >= protocol.num_classes]
    if bad:
        raise ConfigError(
            f"labels {bad} out of range: the protocol has {protocol.num_classes} private classes"
        )
    return labels


def _target_label(defense: Defense) -> str:
    return f"{defense.name}:{sorted(defense.get_params().items())}"


def cell_spec(ctx: RunContext, defense: Defense, attack: Attack) -> dict[str, Any]:
    """The resolved spec of one (defense, attack) cell: everything its numbers depend on."""
    return resolved_cell_spec(ctx.spec, ctx.protocol, ctx.device, defense, attack)


def resolved_cell_spec(spec: RunSpec, protocol: Protocol, device: torch.device,
                       defense: Defense, attack: Attack) -> dict[str, Any]:
    """:func:`cell_spec` without a run context (a sweep's driver keys its cells with it)."""
    s = spec
    return {
        "result_version": RESULT_VERSION,
        "dataset": s.dataset,
        "protocol": protocol.describe(),
        "resolution": s.resolution,
        "train": s.train.model_dump(),
        "evaluator": s.evaluator.model_dump(),
        "references": s.references.model_dump(),
        "defense": defense.name,
        "defense_params": defense.get_params(),
        "attack": attack.name,
        "attack_params": attack.get_params(),
        "labels": _labels(s, protocol),
        "per_label": s.per_label,
        "budget": s.budget,
        "output": None if s.output is None else s.output.model_dump(),
        "seed": s.seed,
        "device": device.type,
    }


def method_label(method: Defense | Attack | EndpointTarget) -> str:
    """``mid(beta=0.1)``: the name and only the parameters that differ from their defaults."""
    if isinstance(method, EndpointTarget):
        return method.label()
    fields = type(method).Params.model_fields
    changed = {k: v for k, v in method.get_params().items() if v != fields[k].default}
    if not changed:
        return method.name
    return f"{method.name}(" + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())) + ")"


def check_against_protocol(
    spec: RunSpec, protocol: Protocol, defenses: list[Defense], attacks: list[Attack]
) -> None:
    """Build every target, evaluator and attack for the protocol's image shape, or raise.

    Runs before the store is opened, so a spec that cannot run writes nothing: a GAN resolution
    an attack does not support, an evaluator architecture that does not fit the images, too few
    held-out images to calibrate ``success``, labels out of range.
    """
    from invbench.models import make_classifier

    _labels(spec, protocol)
    shape, k = protocol.image_shape, protocol.num_classes
    for d in defenses:
        try:
            d.build(arch=spec.train.arch, image_shape=shape, num_classes=k)
        except InvbenchError as exc:
            raise ConfigError(f"defense '{d.name}' on {protocol.dataset} {shape}: {exc}") from None
    for arch in spec.evaluator.families(shape):
        try:
            make_classifier(arch, image_shape=shape, num_classes=k)
        except InvbenchError as exc:
            raise ConfigError(f"evaluator '{arch}' on {protocol.dataset} {shape}: {exc}") from None
    for a in attacks:
        try:
            a.check(image_shape=shape)
        except InvbenchError as exc:
            raise ConfigError(f"attack '{a.name}' on {protocol.dataset} {shape}: {exc}") from None
    split_holdout(protocol, seed=spec.seed)


def _timed(ctx: RunContext, key: str, t0: float) -> float:
    dt = round(time.perf_counter() - t0, 3)
    ctx.timings[key] = round(ctx.timings.get(key, 0.0) + dt, 3)
    return dt


def run_target(ctx: RunContext, defense: Defense) -> tuple[nn.Module, float]:
    """The trained target for ``defense`` and its private-test accuracy (cached when possible).

    Trained once per run and defense, stored in ``ctx.cache`` under the protocol, training
    config, defense and seed; reseeded with the run's seed. Benchmark scripts use it to get
    the very target a run attacks (``benchmarks/gan_priors.py``).
    """
    label = _target_label(defense)
    if label in ctx.targets:
        return ctx.targets[label]
    s = ctx.spec
    t0 = time.perf_counter()
    if isinstance(defense, EndpointTarget):
        # utility costs the endpoint one query per held-out private image
        answers = defense.access("label-only").predict_label(ctx.protocol.private_test.x)
        acc = float((answers.cpu() == ctx.protocol.private_test.y).float().mean())
        ctx.target_keys[label] = str(defense.info.get("target_key") or defense.url)
        log(f"target [bold]{defense.label()}[/] private-test accuracy {acc:.1%} "
            f"({len(answers)} queries)", quiet=ctx.quiet)
        ctx.targets[label] = (None, acc)  # type: ignore[assignment]
        return ctx.targets[label]
    model = defense.train(
        ctx.protocol, config=s.train, seed=s.seed, device=ctx.device, quiet=ctx.quiet,
        cache=ctx.cache,
    )
    hit = defense.train_hit_
    ctx.target_keys[label] = ctx.cache.key(defense.cache_parts(ctx.protocol, s.train, s.seed))
    model = model.to(ctx.device).eval()
    reseed(model, s.seed)
    acc = target_accuracy(model, ctx.protocol.private_test, device=ctx.device)
    dt = _timed(ctx, f"target {method_label(defense)}", t0)
    log(
        f"target [bold]{method_label(defense)}[/] {'(cached) ' if hit else ''}"
        f"private-test accuracy {acc:.1%} [dim]{dt:.0f} s[/]",
        quiet=ctx.quiet,
    )
    ctx.targets[label] = (model, acc)
    return model, acc


def run_judges(ctx: RunContext) -> EvalContext:
    """The run's evaluation context (evaluators trained or loaded once per run)."""
    if ctx.judges is None:
        ctx.judges, ctx.ref_index = build_judges(
            ctx.protocol,
            ctx.spec.evaluator,
            seed=ctx.spec.seed,
            device=ctx.device,
            cache=ctx.cache,
            quiet=ctx.quiet,
            timings=ctx.timings,
        )
    return ctx.judges


def _references(ctx: RunContext, defense: Defense, model: nn.Module) -> dict[str, Judgement]:
    """The three references for this target, judged (private_test and noise are shared)."""
    label = _target_label(defense)
    if label in ctx.references:
        return ctx.references[label]
    judges = run_judges(ctx)
    s, p = ctx.spec, ctx.protocol
    labels = _labels(s, p)
    per_class = s.references.per_class
    shared = next(iter(ctx.references.values()), None)
    out: dict[str, Judgement] = {}
    t0 = time.perf_counter()
    if shared is not None:
        out["private_test"], out["noise"] = shared["private_test"], shared["noise"]
    else:
        assert ctx.ref_index is not None
        real = private_test_reference(
            p, labels, per_class=per_class, ref_index=ctx.ref_index, seed=s.seed
        )
        out["private_test"] = judge(real, judges)
        out["noise"] = judge(noise_reference(p, labels, per_class=per_class, seed=s.seed), judges)
    if model is None:  # an endpoint: no gradients to make adversarial noise with
        log(f"[yellow]no adversarial reference for {method_label(defense)}:[/] the target "
            "is an endpoint (no gradients)", quiet=ctx.quiet)
        ctx.references[label] = out
        return out
    a = s.references.adversarial
    adv = adversarial_reference(
        p, labels, model, per_class=per_class, seed=s.seed, eps=a.eps, steps=a.steps,
        step_size=a.step_size, eot=a.eot, device=ctx.device,
    )
    reseed(model, s.seed)
    out["adversarial"] = judge(adv, judges)
    fooled = float(adv.scores.mean())
    dt = _timed(ctx, f"references {method_label(defense)}", t0)
    log(
        f"references for [bold]{method_label(defense)}[/]: adversarial noise reaches target "
        f"confidence {fooled:.2f} [dim]{dt:.0f} s[/]",
        quiet=ctx.quiet,
    )
    ctx.references[label] = out
    return out


def fooled_warnings(refs: dict[str, dict[str, float | None]]) -> list[str]:
    """One warning per rate metric that scores the adversarial reference > 10 points over noise.

    Also warns when ``success`` scores real held-out images below one half (the evaluators are
    too weak or the thresholds too strict for the headline to mean much).
    """
    out: list[str] = []
    noise, adv = refs.get("noise", {}), refs.get("adversarial", {})
    for key, value in adv.items():
        base = noise.get(key)
        if value is None or base is None or not is_rate(key):
            continue
        if value - base > FOOLED_MARGIN:
            out.append(
                f"{key} is fooled: adversarial noise scores {value:.2f} against {base:.2f} for "
                "uniform noise (features that transfer from the target, not reconstructions)"
            )
    real = refs.get("private_test", {}).get("success")
    if real is not None and real < 0.5:
        out.append(
            f"success scores held-out private images only {real:.2f}: the evaluators are too "
            "weak for this protocol (train them longer)"
        )
    return out


#: private training and held-out images per attacked class stored beside reconstructions
ARTIFACT_PER_CLASS = 8


def _per_class(x: Tensor, y: Tensor, classes: list[int], n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` images of each class in ``classes`` (in dataset order) and their labels."""
    idx = torch.cat([torch.nonzero(y == c).flatten()[:n] for c in classes])
    return x[idx].contiguous(), y[idx].contiguous()


def _save_artifacts(
    ctx: RunContext, rec: Reconstruction, per_image: dict[str, Tensor], name: str
) -> dict[str, str]:
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
    classes = sorted(set(rec.labels.tolist()))
    train_x, train_y = _per_class(p.x, p.y, classes, ARTIFACT_PER_CLASS)
    t = ctx.protocol.private_test
    test_x, test_y = _per_class(t.x, t.y, classes, ARTIFACT_PER_CLASS)
    payload = {
        "images": rec.images.contiguous(),
        "labels": rec.labels.contiguous(),
        "scores": rec.scores.contiguous(),
        **{k: v.contiguous() for k, v in per_image.items()},
        # what a report or a human judge shows beside the reconstructions, so neither has
        # to reload the dataset: the first private training images of each attacked class
        # and held-out private images of each (never trained on: the judge's controls)
        "private_images": train_x, "private_labels": train_y,
        "heldout_images": test_x, "heldout_labels": test_y,
    }
    with atomic_path(tensors) as tmp:
        save_file(payload, str(tmp))
    return {"grid": str(grid), "reconstructions": str(tensors)}


def _cell_header(ctx: RunContext, defense: Defense, attack: Attack | UpdateAttack
                 ) -> dict[str, Any]:
    """What names a cell in its result row (done or failed): kind, methods, labels, seed."""
    return {
        "kind": "update" if isinstance(attack, UpdateAttack) else "inversion",
        "dataset": ctx.spec.dataset,
        "defense": defense.name,
        "defense_params": defense.get_params(),
        "attack": attack.name,
        "attack_params": attack.get_params(),
        "defense_label": method_label(defense),
        "attack_label": method_label(attack),
        "seed": ctx.spec.seed,
    }


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, InvbenchError) else f"{type(exc).__name__}: {text}"


def run_cell(ctx: RunContext, defense: Defense, attack: Attack) -> dict[str, Any]:
    """Run one (defense, attack) cell, or return its stored result; record it either way.

    A failure of the method (budget exhausted, NaN images, any exception but an interrupt) is
    stored as a ``failed`` run with its one-line message and returned with ``status: failed``;
    ``find`` never returns failed runs, so a later run retries the cell.
    """
    cspec = cell_spec(ctx, defense, attack)
    key = spec_hash(cspec)
    stored = ctx.store.find(key)
    if stored is not None:
        log(
            f"[dim]{method_label(defense)} x {method_label(attack)}: already in the store, "
            "skipped[/]",
            quiet=ctx.quiet,
        )
        return {**stored, "cached": True}

    run_judges(ctx)  # the evaluators are the benchmark's own: their errors are not the method's
    t0 = time.perf_counter()
    try:
        if isinstance(attack, UpdateAttack):
            return _execute_update(ctx, defense, attack, cspec, key, t0)
        return _execute(ctx, defense, attack, cspec, key, t0)
    except Exception as exc:  # the method failed: record it and go on with the next cell
        message = _one_line(exc)
        log(
            f"[red]{method_label(defense)} x {method_label(attack)} failed:[/] {message}",
            quiet=False,
        )
        result = {"status": "failed", "error": message, **_cell_header(ctx, defense, attack)}
        seconds = time.perf_counter() - t0
        ctx.store.record(
            spec_hash=key,
            kind="benchmark",
            spec={**cspec, "versions": versions(), "invbench": __version__},
            result=result,
            metrics={},
            artifacts={},
            seconds=seconds,
            status="failed",
        )
        return {**result, "seconds": round(seconds, 3), "cached": False}


def _run_white_box(
    ctx: RunContext, defense: Defense, attack: Attack, model: nn.Module
) -> tuple[Reconstruction, float, float]:
    """Prepare and invert a white-box attack in this process, on the module itself."""
    s = ctx.spec
    access = make_access(
        attack.access,
        model,
        num_classes=ctx.protocol.num_classes,
        image_shape=ctx.protocol.image_shape,
        budget=s.budget,
        target_key=ctx.target_keys[_target_label(defense)],
    )
    t1 = time.perf_counter()
    torch.manual_seed(s.seed)
    reseed(model, s.seed)
    attack.prepare(
        ctx.protocol.public,
        access=access,
        cache=ctx.cache.view(attack.cache_owner()),
        seed=s.seed,
        quiet=ctx.quiet,
    )
    t_prepare = _timed(ctx, f"prepare {method_label(attack)}", t1)
    t1 = time.perf_counter()
    torch.manual_seed(s.seed)
    reseed(model, s.seed)
    rec = attack.invert(access, _labels(s, ctx.protocol), s.per_label, seed=s.seed, quiet=ctx.quiet)
    cell = f"{method_label(defense)} x {method_label(attack)}"
    t_invert = _timed(ctx, f"invert {cell}", t1)
    return rec, t_prepare, t_invert


def _run_query_only(
    ctx: RunContext, defense: Defense, attack: Attack | UpdateAttack, model: nn.Module,
    *, updates: list[nn.Module] | None = None, target_key: str | None = None,
) -> tuple[Reconstruction | UpdateInference, float, float]:
    """Run a black-box or label-only attack in a worker process this process serves.

    The target stays here, behind a :class:`TargetService` (output processing, budget and
    query counting on this side); the attack runs in a fresh interpreter that reaches it
    only through query messages (:mod:`invbench.serving.worker`). ``updates``: the
    target's updated versions, served beside it to an update attack; ``target_key``: the
    served target's identity (default: the trained target's cache key).
    """
    s = ctx.spec
    service = TargetService(
        model,
        level=attack.access,
        num_classes=ctx.protocol.num_classes,
        image_shape=ctx.protocol.image_shape,
        output=ctx.output,
        budget=s.budget,
        target_key=served_target_key(
            target_key or ctx.target_keys[_target_label(defense)], ctx.output),
        seed=s.seed,
        updates=updates or (),
    )
    result = run_isolated(
        attack,
        service,
        public=ctx.protocol.public,
        labels=_labels(s, ctx.protocol),
        per_label=s.per_label,
        seed=s.seed,
        cache_root=ctx.cache.root,
        cache_owner=attack.cache_owner(),
        device=str(ctx.device),
        quiet=ctx.quiet,
    )
    attack.prepare_queries_ = result.prepare_queries
    t_prepare = float(result.timings.get("prepare", 0.0))
    t_invert = float(result.timings.get("invert", 0.0))
    cell = f"{method_label(defense)} x {method_label(attack)}"
    for key, dt in ((f"prepare {method_label(attack)}", t_prepare), (f"invert {cell}", t_invert)):
        ctx.timings[key] = round(ctx.timings.get(key, 0.0) + dt, 3)
    return result.reconstruction, t_prepare, t_invert


def _run_against_endpoint(
    ctx: RunContext, endpoint: EndpointTarget, attack: Attack
) -> tuple[Reconstruction, float, float]:
    """Prepare and invert a query-only attack against an endpoint, in this process.

    This process holds no module of the target (only its URL), so no worker is needed; the
    endpoint counts the queries and enforces its own budget.
    """
    s = ctx.spec
    access = endpoint.access(attack.access)
    t1 = time.perf_counter()
    torch.manual_seed(s.seed)
    attack.prepare(ctx.protocol.public, access=access,
                   cache=ctx.cache.view(attack.cache_owner()), seed=s.seed, quiet=ctx.quiet)
    t_prepare = _timed(ctx, f"prepare {method_label(attack)}", t1)
    t1 = time.perf_counter()
    torch.manual_seed(s.seed)
    rec = attack.invert(access, _labels(s, ctx.protocol), s.per_label, seed=s.seed, quiet=ctx.quiet)
    t_invert = _timed(ctx, f"invert {endpoint.label()} x {method_label(attack)}", t1)
    return rec, t_prepare, t_invert


def _execute(
    ctx: RunContext,
    defense: Defense,
    attack: Attack,
    cspec: dict[str, Any],
    key: str,
    t0: float,
) -> dict[str, Any]:
    model, acc = run_target(ctx, defense)
    judges = run_judges(ctx)
    refs = _references(ctx, defense, model)

    if isinstance(defense, EndpointTarget):
        rec, t_prepare, t_invert = _run_against_endpoint(ctx, defense, attack)
    elif attack.access == "white-box":
        rec, t_prepare, t_invert = _run_white_box(ctx, defense, attack, model)
    else:
        rec, t_prepare, t_invert = _run_query_only(ctx, defense, attack, model)
        assert isinstance(rec, Reconstruction)
    cell = f"{method_label(defense)} x {method_label(attack)}"
    t1 = time.perf_counter()
    judgement = judge(rec, judges)
    t_metrics = _timed(ctx, f"metrics {cell}", t1)
    ref_scores = {name: refs[name].scores for name in REFERENCES if name in refs}
    warnings = fooled_warnings(ref_scores)
    if "adversarial" not in refs:
        warnings.append("no adversarial reference: the target is an endpoint (no gradients), "
                        "so whether a rate metric is fooled is unchecked")
    seconds = time.perf_counter() - t0
    name = f"{defense.name}-{attack.name}-{key[:10]}"
    artifacts = _save_artifacts(ctx, rec, judgement.per_image, name)
    metrics = judgement.scores
    log(
        f"{cell}: success {metrics.get('success', float('nan')):.2f}, "
        f"acc1 {metrics.get('acc1', float('nan')):.2f} [dim]{seconds:.0f} s[/]",
        quiet=ctx.quiet,
    )
    result = {
        "status": "done",
        **_cell_header(ctx, defense, attack),
        "num_classes": ctx.protocol.num_classes,
        **{f"defense_{k}": v for k, v in defense.report_.items()},
        "target_accuracy": acc,
        "evaluator_accuracy": {ev.name: ev.accuracy for ev in judges.ensemble},
        "metrics": metrics,
        "references": ref_scores,
        "reference_sizes": {name: refs[name].n for name in REFERENCES if name in refs},
        "warnings": warnings,
        "queries": rec.queries,
        "prepare_queries": attack.prepare_queries_,
        "seconds": round(seconds, 3),
        "timings": {"prepare": t_prepare, "invert": t_invert, "metrics": t_metrics},
        "artifacts": artifacts,
    }

    def finite(d: dict[str, float | None]) -> dict[str, float]:
        return {k: v for k, v in d.items() if v is not None}

    all_metrics = {
        "attack": finite(metrics),
        "target": {"accuracy": acc},
        **{f"ref_{k}": finite(v) for k, v in ref_scores.items()},
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


def draw_update_sets(
    ctx: RunContext, attack: UpdateAttack
) -> tuple[list[Tensor], Tensor]:
    """The private update sets of an update attack's cell and their label distributions.

    Drawn with the run's seed from the held-out private images (``private_test``: new data
    the target never trained on). Single-sample updates (``update_size() == 1``): one image
    per requested label and ``per_label`` (the labels in order, as an inversion's
    reconstructions); multi-sample: ``labels x per_label`` sets of ``update_size()`` images
    with flat-Dirichlet label proportions over the requested labels
    (:func:`~invbench.training.draw_label_mixtures`). Returns index sets into
    ``private_test`` and (N, K) label distributions.
    """
    s, p = ctx.spec, ctx.protocol
    labels = _labels(s, p)
    gen = torch.Generator().manual_seed(int(s.seed) + 31)
    k = p.num_classes
    if attack.update_size() == 1:
        lab = torch.tensor(labels, dtype=torch.long).repeat_interleave(s.per_label)
        idx = draw_samples(p.private_test.y, lab, generator=gen)
        return [i.view(1) for i in idx], torch.nn.functional.one_hot(lab, k).float()
    return draw_label_mixtures(p.private_test.y, n=len(labels) * s.per_label,
                               size=attack.update_size(), classes=sorted(labels),
                               num_classes=k, generator=gen)


def _execute_update(
    ctx: RunContext,
    defense: Defense,
    attack: UpdateAttack,
    cspec: dict[str, Any],
    key: str,
    t0: float,
) -> dict[str, Any]:
    """One cell of an attack on the target's updates (Updates-Leak).

    The runner plays the deployment: it draws private update sets
    (:func:`draw_update_sets`), applies the attack's update recipe to a copy of the target
    for each (:func:`~invbench.training.apply_update`), and serves the target and its
    updated versions behind one :class:`TargetService` (output processing and budget on
    this side) to the attack in a worker process. The inference is scored against the true
    update sets, next to the scores of guessing without queries
    (:mod:`invbench.metrics.updates`).
    """
    from invbench.metrics.updates import update_baseline, update_scores

    s, p = ctx.spec, ctx.protocol
    model, acc = run_target(ctx, defense)
    judges = run_judges(ctx)
    cell = f"{method_label(defense)} x {method_label(attack)}"
    t1 = time.perf_counter()
    sets, true_dist = draw_update_sets(ctx, attack)
    x, y = p.private_test.x, p.private_test.y
    recipe = attack.update_recipe()
    # apply_update reseeds each copy itself
    updated = [apply_update(model, x[idx], y[idx], recipe=recipe,
                            seed=int(s.seed) * 1_000_003 + i) for i, idx in enumerate(sets)]
    reseed(model, s.seed)
    t_update = _timed(ctx, f"update {cell}", t1)
    base_key = ctx.target_keys[_target_label(defense)]
    inferred, t_prepare, t_invert = _run_query_only(
        ctx, defense, attack, model, updates=updated, target_key=f"{base_key}|updates={key}")
    assert isinstance(inferred, UpdateInference)
    single = attack.update_size() == 1
    true_images = torch.cat([x[idx] for idx in sets]) if single else None
    t1 = time.perf_counter()
    metrics = update_scores(inferred, true_dist=true_dist, true_images=true_images,
                            evaluator=judges.standard)
    baseline = update_baseline(true_dist=true_dist, labels=_labels(s, p),
                               public_mean=p.public.x.float().mean(0, keepdim=True),
                               true_images=true_images, evaluator=judges.standard)
    t_metrics = _timed(ctx, f"metrics {cell}", t1)
    seconds = time.perf_counter() - t0
    artifacts = _save_update_artifacts(ctx, inferred, true_dist, true_images,
                                       f"{defense.name}-{attack.name}-{key[:10]}")
    log(f"{cell}: label_acc {metrics['label_acc']:.2f} (chance {baseline['label_acc']:.2f})"
        + (f", update_mse {metrics['update_mse']:.4f} (mean public image "
           f"{baseline['update_mse']:.4f})" if single else "")
        + f" [dim]{seconds:.0f} s[/]", quiet=ctx.quiet)
    out = {
        "status": "done",
        **_cell_header(ctx, defense, attack),
        "num_classes": p.num_classes,
        **{f"defense_{k}": v for k, v in defense.report_.items()},
        "target_accuracy": acc,
        "updates": len(sets),
        "update_size": attack.update_size(),
        "metrics": metrics,
        "references": {"baseline": baseline},
        "warnings": [],
        "queries": inferred.queries,
        "prepare_queries": attack.prepare_queries_,
        "seconds": round(seconds, 3),
        "timings": {"update": t_update, "prepare": t_prepare, "invert": t_invert,
                    "metrics": t_metrics},
        "artifacts": artifacts,
    }
    ctx.store.record(
        spec_hash=key, kind="benchmark",
        spec={**cspec, "versions": versions(), "invbench": __version__},
        result=out,
        metrics={"attack": metrics, "target": {"accuracy": acc}, "ref_baseline": baseline},
        artifacts=artifacts, seconds=seconds,
    )
    return {**out, "cached": False}


def _save_update_artifacts(ctx: RunContext, inferred: UpdateInference, true_dist: Tensor,
                           true_images: Tensor | None, name: str) -> dict[str, str]:
    """The inference (and, for samples, a grid: true update samples | reconstructions)."""
    out_dir = ctx.spec.out / ctx.spec.dataset
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"label_dist": inferred.label_dist.contiguous(),
               "true_dist": true_dist.contiguous()}
    artifacts: dict[str, str] = {}
    if inferred.images is not None and true_images is not None:
        payload["images"] = inferred.images.contiguous()
        payload["true_images"] = true_images.contiguous()
        grid = out_dir / f"{name}.png"
        labels = true_dist.argmax(1)
        save_comparison_grid(grid, private=true_images, private_labels=labels,
                             recon=inferred.images, recon_labels=labels,
                             class_names=list(ctx.protocol.class_names))
        artifacts["grid"] = str(grid)
    tensors = out_dir / f"{name}.safetensors"
    with atomic_path(tensors) as tmp:
        save_file(payload, str(tmp))
    artifacts["reconstructions"] = str(tensors)
    return artifacts


def load_spec_protocol(spec: RunSpec) -> Protocol:
    """The protocol a run spec names (dataset, split, cap and seed)."""
    return load_protocol(
        spec.dataset,
        data_dir=spec.data_dir,
        resolution=spec.resolution,
        private_classes=spec.protocol.private_classes,
        public_classes=spec.protocol.public_classes,
        test_fraction=spec.protocol.test_fraction,
        max_per_class=spec.protocol.max_per_class,
        seed=spec.seed,
    )


def run_benchmark(
    spec: RunSpec, *, quiet: bool = False, timings: dict[str, float] | None = None,
    store: Collector | None = None,
) -> list[dict[str, Any]]:
    """Run every (defense, attack) cell of ``spec``; returns one result dict per cell.

    ``spec`` must be validated (:func:`invbench.config.make_spec` / ``load_spec``); the data is
    loaded and every method is built for its image shape before the store is opened, so bad
    input writes nothing. Failed cells come back with ``status: "failed"`` and an ``error``.
    ``timings``, when given, is filled with seconds per stage (data, each target, each
    evaluator, references, each prepare/invert/metrics). ``store``: a :class:`Collector`
    that keeps the finished cells' records instead of the store in ``spec.out`` (a sweep's
    worker; nothing is looked up, every cell runs).
    """
    t0 = time.perf_counter()
    device = check_device(spec.device)
    attacks = [build_method("attack", m) for m in spec.attacks]
    endpoint = EndpointTarget(spec.target_url) if spec.target_url is not None else None
    defenses = ([endpoint] if endpoint is not None
                else [build_method("defense", m) for m in spec.defenses])
    protocol = load_spec_protocol(spec)
    if endpoint is not None:
        endpoint.check(protocol, attacks)  # type: ignore[arg-type]
        check_against_protocol(spec, protocol, [], attacks)  # type: ignore[arg-type]
    else:
        check_against_protocol(spec, protocol, defenses, attacks)  # type: ignore[arg-type]
    log(
        f"protocol [bold]{protocol.dataset}[/]: {protocol.num_classes} private classes "
        f"{list(protocol.private_classes)}, {len(protocol.private_train)} train / "
        f"{len(protocol.private_test)} test images; public {len(protocol.public)} images",
        quiet=quiet,
    )
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(out / "invbench.sqlite") if store is None else store
    ctx = RunContext(
        spec=spec,
        protocol=protocol,
        device=device,
        cache=Cache(out / "cache"),
        store=store,
        quiet=quiet,
        timings=timings if timings is not None else {},
        output=None if spec.output is None else build_method("output", spec.output),  # type: ignore[arg-type]
    )
    _timed(ctx, "data", t0)
    results = []
    try:
        for defense in defenses:
            for attack in attacks:
                results.append(run_cell(ctx, defense, attack))  # type: ignore[arg-type]
    finally:
        store.close()
    return results
