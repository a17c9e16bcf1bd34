"""The metric interface and :func:`evaluate`, which runs the registered metrics.

A metric is a :class:`~invbench.params.Configurable` registered with
:func:`~invbench.registry.register_metric` and one abstract method,
:meth:`Metric.compute`, which gets the reconstruction and an
:class:`~invbench.metrics.context.EvalContext` (the evaluators). It returns a flat mapping:

* a float per score (``"acc1": 0.8``); ``None`` when the score is undefined for this input
  (FID with fewer samples than feature dimensions) — reported as JSON ``null``, never made up;
* optionally a 1-D tensor of length N per *per-image decision*, named ``img_*``
  (``"img_pred_robust"``, ``"img_knn_dist"``...), which :func:`judge` returns separately
  so it can be stored with the reconstructions (later tools compare image by image).

:func:`evaluate` does the chores once for all metrics: it checks that the reconstruction fits
the protocol and the evaluators (shapes, label range, finite pixels in [0, 1]) and that every
number a metric returns is finite, so a malformed input is a one-line
:class:`~invbench.errors.DataError`, never a silent wrong number.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from invbench.errors import DataError
from invbench.params import Configurable
from invbench.registry import METRICS

if TYPE_CHECKING:
    from invbench.data.protocol import Protocol
    from invbench.metrics.context import EvalContext
    from invbench.metrics.evaluator import Evaluator
    from invbench.types import Reconstruction

#: what a metric returns: scores (float or None) and per-image decisions ((N,) tensors)
MetricOutput = dict[str, "float | None | torch.Tensor"]


class Metric(Configurable, ABC):
    """Base class of reconstruction metrics (one registered subclass per file in ``metrics/``).

    Subclasses implement :meth:`compute` and are registered by name, e.g.
    ``@register_metric("accuracy")``. They may assume :func:`check_reconstruction` has passed
    and that every member of the context named in :attr:`requires` is present.

    Example::

        from invbench.metrics import evaluate
        scores = evaluate(recon, ctx)   # {"acc1": ..., "knn_dist": ..., "success": ...}
    """

    kind: ClassVar[str] = "metric"
    #: the score keys it returns (``acc1_*`` stands for one per ensemble member), for
    #: ``invbench list`` and ``--metrics``
    keys: ClassVar[tuple[str, ...]] = ()
    #: members of :class:`EvalContext` this metric needs beyond ``standard``
    #: (``"robust"``, ``"extractor"``, ``"ensemble"``, ``"thresholds"``)
    requires: ClassVar[tuple[str, ...]] = ()
    #: score keys that are rates of success in [0, 1] (checked against the references: a rate
    #: that scores adversarial noise well above uniform noise is being fooled)
    rates: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        """Score ``recon`` (images (N, C, H, W) in [0, 1], labels (N,) in ``0..k-1``).

        Returns a flat mapping of score names to finite floats (or ``None`` where undefined)
        and, optionally, per-image decisions as (N,) tensors.
        """


def check_reconstruction(recon: Reconstruction, protocol: Protocol, evaluator: Evaluator) -> None:
    """Raise a one-line :class:`DataError` unless ``recon`` fits ``protocol`` and ``evaluator``.

    Checks: images are a finite (N, C, H, W) tensor in [0, 1] with the protocol's image
    shape; labels are (N,) integers in ``0..num_classes-1``; the evaluator was built for the
    protocol's number of classes and image shape.
    """
    from invbench.data.protocol import check_images

    images, labels = recon.images, recon.labels
    check_images(images, what="reconstruction")
    shape = tuple(protocol.image_shape)
    if tuple(images.shape[1:]) != shape:
        raise DataError(
            f"reconstruction: images of shape {tuple(images.shape[1:])} do not match the "
            f"protocol's image shape {shape}"
        )
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1:
        got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise DataError(f"reconstruction: labels must be a 1-D tensor, got {got}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(
            f"reconstruction: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise DataError(f"reconstruction: labels must be integers, got dtype {labels.dtype}")
    k = protocol.num_classes
    bad = labels[(labels < 0) | (labels >= k)]
    if bad.numel():
        shown = sorted({int(v) for v in bad.tolist()})[:5]
        raise DataError(
            f"reconstruction: labels {shown} out of range; the protocol has {k} private classes "
            f"(0..{k - 1})"
        )
    if evaluator.num_classes != k:
        raise DataError(
            f"evaluator has {evaluator.num_classes} outputs but the protocol has {k} private "
            "classes; train the evaluator on this protocol"
        )
    if tuple(evaluator.image_shape) != shape:
        raise DataError(
            f"evaluator expects images of shape {tuple(evaluator.image_shape)}, the protocol's "
            f"are {shape}; train the evaluator on this protocol"
        )


def _chosen(ctx: EvalContext, metrics: Sequence[str | Metric] | None) -> list[Metric]:
    from invbench.errors import ConfigError

    have = ctx.available()
    if metrics is None:
        out = [METRICS.get(n)() for n in METRICS.names()]
        return [m for m in out if set(m.requires) <= have]
    chosen: list[Metric] = []
    for m in metrics:
        metric = m if isinstance(m, Metric) else METRICS.get(m)()
        missing = sorted(set(metric.requires) - have)
        if missing:
            raise ConfigError(
                f"metric '{metric.name}' needs the evaluation context's {', '.join(missing)}; "
                "build the context with build_judges() or pass those evaluators"
            )
        chosen.append(metric)
    return chosen


@dataclass
class Judgement:
    """Scores of one reconstruction set and its per-image decisions ((N,) tensors, CPU)."""

    scores: dict[str, float | None]
    per_image: dict[str, Tensor]
    #: number of images judged
    n: int = 0


def judge(
    recon: Reconstruction,
    ctx: EvalContext,
    *,
    metrics: Sequence[str | Metric] | None = None,
) -> Judgement:
    """Run metrics on a reconstruction: scores plus per-image decisions.

    Args:
        recon: the attack's output (images (N, C, H, W) in [0, 1], labels (N,)).
        ctx: the evaluators (see :class:`~invbench.metrics.context.EvalContext`).
        metrics: registered metric names (each built with default parameters) or
            :class:`Metric` instances; default: every registered metric whose
            :attr:`Metric.requires` the context meets.

    Raises:
        DataError: malformed reconstruction (shape, labels, NaN) or a non-finite result.
        ConfigError: an unknown metric name, or a named metric the context cannot serve.
    """
    for ev in (ctx.standard, ctx.robust, ctx.extractor, *ctx.ensemble):
        if ev is not None:
            check_reconstruction(recon, ctx.protocol, ev)
    n = len(recon)
    scores: dict[str, float | None] = {}
    per_image: dict[str, Tensor] = {}
    chosen = _chosen(ctx, metrics)
    ctx._memo = {}
    try:
        outputs = [(metric, metric.compute(recon, ctx)) for metric in chosen]
    finally:
        ctx._memo = None
    for metric, output in outputs:
        for key, value in output.items():
            if key in scores or key in per_image:
                raise RuntimeError(f"metric '{metric.name}' returns '{key}', already reported")
            if isinstance(value, Tensor):
                if not key.startswith("img_") or value.shape != (n,):
                    raise RuntimeError(
                        f"metric '{metric.name}' gave per-image '{key}' of shape "
                        f"{tuple(value.shape)}; expected a name 'img_*' and shape ({n},)"
                    )
                per_image[key] = value.detach().cpu()
                continue
            if value is None:
                scores[key] = None
                continue
            value = float(value)
            if not math.isfinite(value):
                raise DataError(
                    f"metric '{metric.name}' gave {key}={value}; the reconstruction or the "
                    "evaluator produced non-finite values"
                )
            scores[key] = value
    return Judgement(scores=scores, per_image=per_image, n=n)


def evaluate(
    recon: Reconstruction,
    ctx: EvalContext,
    *,
    metrics: Sequence[str | Metric] | None = None,
) -> dict[str, float | None]:
    """The scores of :func:`judge` (no per-image decisions).

    Example::

        rec = attack.invert(WhiteBox(target, ...), labels=[0, 1], per_label=8)
        print(evaluate(rec, EvalContext(protocol=protocol, standard=ev), metrics=["accuracy"]))
    """
    return judge(recon, ctx, metrics=metrics).scores


def rate_patterns() -> list[str]:
    """Every score key (or ``fnmatch`` pattern, e.g. ``acc1_*``) registered metrics call rates."""
    return [k for n in METRICS.names() for k in METRICS.get(n).rates]


def is_rate(key: str) -> bool:
    """Whether score ``key`` is a rate of success in [0, 1] (``acc1``, ``acc1_robust``...).

    Standard deviations (``*_std``) and interval ends (``*_lo``, ``*_hi``) are not rates.
    """
    from fnmatch import fnmatchcase

    if key.endswith(("_std", "_lo", "_hi")):
        return False
    return any(fnmatchcase(key, pat) for pat in rate_patterns())


def known_keys() -> set[str]:
    """Every score key a registered metric declares (``acc1_*`` patterns included as written)."""
    return {k for n in METRICS.names() for k in METRICS.get(n).keys}

