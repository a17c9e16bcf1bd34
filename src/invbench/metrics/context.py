"""What metrics are judged with: the evaluators, the calibrated thresholds and the protocol.

:class:`EvalContext` is built once per benchmark (see :func:`invbench.metrics.judges.build_judges`)
and handed to every :class:`~invbench.metrics.base.Metric`. It holds:

* ``standard`` — the standard evaluator (MIBench's evaluation model; ``acc1``, ``acc5``,
  ``knn_dist``).
* ``robust`` — the adversarially trained evaluator; its feature space is where ``fid``, ``kid``,
  PRDC and the ``success`` distance are measured.
* ``extractor`` — an independently trained feature extractor of another architecture family
  (``feat_dist``, MIBench's δ_face).
* ``ensemble`` — the evaluators that vote (the robust one included), each with a distinct
  :attr:`Evaluator.name` (``acc1_<name>``).
* ``thresholds`` — per private class, the robust-feature distance under which a
  reconstruction counts as close enough to the class (calibrated on held-out images).

Any of the optional members may be ``None``/empty; a metric that needs one declares it in
:attr:`Metric.requires`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from torch import Tensor

if TYPE_CHECKING:
    from invbench.data.protocol import Protocol
    from invbench.metrics.evaluator import Evaluator

T = TypeVar("T")


@dataclass
class EvalContext:
    """The evaluators and calibration every metric may use (see the module docstring).

    Example::

        ctx = EvalContext(protocol=protocol, standard=train_evaluator(protocol, seed=0))
        evaluate(recon, ctx, metrics=["accuracy", "knn"])
    """

    protocol: Protocol
    standard: Evaluator
    robust: Evaluator | None = None
    extractor: Evaluator | None = None
    ensemble: tuple[Evaluator, ...] = ()
    #: (num_classes,) float tensor: robust-feature squared-L2 thresholds per private class
    thresholds: Tensor | None = None
    #: the quantile of held-out distances the thresholds were set at (reported)
    threshold_quantile: float | None = None
    #: whether ensemble members vote with test-time augmentation (small shifts)
    tta: bool = True
    #: per-judgement memo (set by :func:`~invbench.metrics.base.judge` for one reconstruction)
    _memo: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def memoized(self, key: str, fn: Callable[[], T]) -> T:
        """``fn()``, computed once per ``key`` while one reconstruction is being judged.

        Several metrics need the same expensive quantity of the same images (the ensemble's
        votes, the robust evaluator's features); :func:`~invbench.metrics.base.judge` opens a
        memo for the reconstruction it judges, so each is computed once. Outside ``judge`` (a
        metric's ``compute`` called directly) nothing is remembered.
        """
        if self._memo is None:
            return fn()
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def available(self) -> set[str]:
        """Names of the optional members that are present (``"robust"``, ``"ensemble"``...)."""
        have = {"standard"}
        if self.robust is not None:
            have.add("robust")
        if self.extractor is not None:
            have.add("extractor")
        if self.ensemble:
            have.add("ensemble")
        if self.thresholds is not None:
            have.add("thresholds")
        return have
