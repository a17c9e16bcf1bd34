"""The metric interface and :func:`evaluate`, which runs the registered metrics.

A metric is a :class:`~invbench.params.Configurable` registered with
:func:`~invbench.registry.register_metric` and one abstract method,
:meth:`Metric.compute`. :func:`evaluate` does the chores once for all of them: it checks
that the reconstruction fits the protocol and the evaluator (shapes, label range, finite
pixels in [0, 1]) and that every number a metric returns is finite, so a malformed input
is a one-line :class:`~invbench.errors.DataError`, never a silent wrong number.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

from invbench.errors import DataError
from invbench.params import Configurable
from invbench.registry import METRICS

if TYPE_CHECKING:
    from invbench.attacks.base import Reconstruction
    from invbench.data.protocol import Protocol
    from invbench.metrics.evaluator import Evaluator


class Metric(Configurable, ABC):
    """Base class of reconstruction metrics (one registered subclass per file in ``metrics/``).

    Subclasses implement :meth:`compute` and are registered by name, e.g.
    ``@register_metric("accuracy")``. They may assume :func:`check_reconstruction` has passed.

    Example::

        from invbench.metrics import evaluate
        scores = evaluate(recon, protocol, evaluator)   # {"acc1": ..., "knn_dist": ...}
    """

    kind: ClassVar[str] = "metric"

    @abstractmethod
    def compute(
        self, recon: Reconstruction, protocol: Protocol, evaluator: Evaluator
    ) -> dict[str, float]:
        """Score ``recon`` (images (N, C, H, W) in [0, 1], labels (N,) in ``0..k-1``).

        Returns a flat mapping of metric names to finite floats.
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


def evaluate(
    recon: Reconstruction,
    protocol: Protocol,
    evaluator: Evaluator,
    *,
    metrics: Sequence[str | Metric] | None = None,
) -> dict[str, float]:
    """Run metrics on a reconstruction and merge their results into one flat dict.

    Args:
        recon: the attack's output (images (N, C, H, W) in [0, 1], labels (N,)).
        protocol: the protocol the target was trained on (private data for distances).
        evaluator: the independent evaluation model (see :func:`train_evaluator`).
        metrics: registered metric names (each built with default parameters) or
            :class:`Metric` instances; default: every registered metric.

    Returns:
        ``{"acc1": ..., "acc5": ..., "acc1_std": ..., "acc5_std": ..., "knn_dist": ...,
        "knn_pixel_dist": ...}`` for the default metrics; every value is a finite float.

    Raises:
        DataError: malformed reconstruction (shape, labels, NaN) or a non-finite result.
        ConfigError: an unknown metric name.

    Example::

        rec = attack.invert(WhiteBox(target, ...), labels=[0, 1], per_label=8)
        print(evaluate(rec, protocol, evaluator, metrics=["accuracy"]))
    """
    check_reconstruction(recon, protocol, evaluator)
    chosen: list[Metric] = []
    for m in METRICS.names() if metrics is None else metrics:
        chosen.append(m if isinstance(m, Metric) else METRICS.get(m)())
    out: dict[str, float] = {}
    for metric in chosen:
        result = metric.compute(recon, protocol, evaluator)
        for key, value in result.items():
            if key in out:
                raise RuntimeError(f"metric '{metric.name}' returns '{key}', already reported")
            value = float(value)
            if not math.isfinite(value):
                raise DataError(
                    f"metric '{metric.name}' gave {key}={value}; the reconstruction or the "
                    "evaluator produced non-finite values"
                )
            out[key] = value
    return out
