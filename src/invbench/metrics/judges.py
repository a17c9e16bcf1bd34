"""Build the evaluation context of a run: the evaluators, the calibration, the references.

:func:`build_judges` trains (or loads from the cache) every evaluator a run needs —

* the **standard** evaluator (``resnet`` by default; MIBench's evaluation model),
* the **others**, independently trained evaluators of other families (``vit`` and ``mlp`` by
  default; the first is the ``feat_dist`` extractor),
* the **robust** evaluator, adversarially trained (``dense`` by default),

— forms the voting ensemble (standard, others, robust), splits the held-out private images into
a calibration and a reference half and sets the per-class ``success`` thresholds on the
calibration half. Each evaluator's training time is recorded in ``timings``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from invbench.metrics.context import EvalContext
from invbench.metrics.evaluator import Evaluator, train_evaluator
from invbench.metrics.references import split_holdout
from invbench.metrics.success import calibrate_thresholds
from invbench.progress import log

if TYPE_CHECKING:
    from invbench.cache import Cache
    from invbench.config import EvaluatorSpec
    from invbench.data.protocol import Protocol


def build_judges(
    protocol: Protocol,
    spec: EvaluatorSpec,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    cache: Cache | None = None,
    quiet: bool = True,
    timings: dict[str, float] | None = None,
) -> tuple[EvalContext, torch.Tensor]:
    """The :class:`EvalContext` of a run and the reference half of the held-out images.

    Returns ``(ctx, ref_index)``: ``ref_index`` indexes ``protocol.private_test`` (the
    ``private_test`` reference); the other half calibrated ``ctx.thresholds``.

    Example::

        ctx, ref_index = build_judges(protocol, EvaluatorSpec(epochs=5), seed=0)
        ctx.ensemble   # (resnet, vit, mlp, robust) evaluators
    """
    from invbench.adversarial import default_adversarial

    timings = timings if timings is not None else {}

    def timed(role: str, **kwargs: object) -> Evaluator:
        t0 = time.perf_counter()
        ev = train_evaluator(
            protocol, seed=seed, device=device, cache=cache, quiet=quiet, **kwargs  # type: ignore[arg-type]
        )
        key = f"evaluator {role}"
        timings[key] = round(time.perf_counter() - t0, 3)
        log(
            f"evaluator [bold]{ev.name}[/] ({ev.arch}) private-test accuracy {ev.accuracy:.1%}"
            f" [dim]{timings[key]:.0f} s[/]",
            quiet=quiet,
        )
        return ev

    standard = timed("standard", arch=spec.arch, epochs=spec.epochs)
    others = [timed(a, arch=a, name=a, epochs=spec.epochs) for a in spec.others]
    r = spec.robust
    adv = default_adversarial(
        protocol.image_shape, method=r.method or "pgd", eps=r.eps, steps=r.steps
    )
    robust = timed("robust", arch=r.arch, name="robust", epochs=r.epochs, adversarial=adv)
    ctx = EvalContext(
        protocol=protocol,
        standard=standard,
        robust=robust,
        extractor=others[0] if others else None,
        ensemble=(standard, *others, robust),
        tta=spec.tta,
    )
    calib, ref = split_holdout(protocol, seed=seed)
    test = protocol.private_test
    ctx.thresholds = calibrate_thresholds(
        test.x[calib], test.y[calib], ctx, num_classes=protocol.num_classes, quantile=spec.quantile
    )
    ctx.threshold_quantile = spec.quantile
    return ctx, ref
