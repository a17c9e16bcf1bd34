"""Output processing: a defense on what a black-box or label-only query returns.

A deployment can post-process its model's answers without retraining it: return only the
top-k probabilities, round them, or add noise. These protect only query access — a
white-box attacker reads the logits directly — so the runner refuses a white-box attack
against a processed target with that reason. Each processing is registered under a name
(``invbench list``) and composes with any training-time defense::

    invbench run --defense mid:beta=0.01 --output top-k:k=1 --attack <black-box attack>

It is applied on the serving side: the access object (:class:`~invbench.access.BlackBox`,
:class:`~invbench.access.LabelOnly`) calls it on the probabilities before answering, and the
processing is part of the cell's spec and of the fingerprint any prior that queried the
target is cached under.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from invbench.params import Configurable, Params
from invbench.registry import register_output


class OutputProcessing(Configurable):
    """Base class: ``processing(probs (N, K)) -> probs (N, K)`` on query answers."""

    kind: ClassVar[str] = "output"

    def __call__(self, probs: Tensor, *, seeds: Tensor | None = None) -> Tensor:
        """The processed probability vectors (same shape).

        ``seeds`` (N,) int64, one per query (:func:`invbench.serving.service.query_seeds`),
        key any randomness, so an image's answer does not depend on the batch it came in.
        """
        raise NotImplementedError

    def describe(self) -> str:
        """``name(k=v, ...)``: what cache keys and result rows record."""
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.get_params().items()))
        return f"{self.name}({params})"


@register_output("top-k")
class TopK(OutputProcessing):
    """Top-k: answer only the ``k`` largest probabilities, the others as 0.

    A classic confidence-masking countermeasure (Fredrikson et al., CCS 2015, discuss
    revealing less of the confidence vector); ``k=1`` leaves one number per query. The
    top-1 label is unchanged. Threat model: black-box and label-only queries.
    """

    class Params(Params):
        """How many probabilities are answered."""

        k: int = Field(1, ge=1, description="probabilities kept (the largest)")

    def __call__(self, probs: Tensor, *, seeds: Tensor | None = None) -> Tensor:
        """Zero every probability but the ``k`` largest of each row."""
        vals, idx = probs.topk(min(self.params.k, probs.shape[1]), dim=1)
        return torch.zeros_like(probs).scatter(1, idx, vals)


@register_output("round")
class Round(OutputProcessing):
    """Rounding: answer probabilities rounded to ``decimals`` places.

    The countermeasure Fredrikson et al., "Model Inversion Attacks that Exploit Confidence
    Information and Basic Countermeasures", CCS 2015, evaluate against MI-Face (rounding to
    0.001–0.1). Threat model: black-box and label-only queries.
    """

    class Params(Params):
        """The rounding precision."""

        decimals: int = Field(2, ge=0, le=8, description="decimal places kept")

    def __call__(self, probs: Tensor, *, seeds: Tensor | None = None) -> Tensor:
        """Round every probability to ``decimals`` places."""
        return torch.round(probs, decimals=self.params.decimals)


@register_output("noise")
class Noise(OutputProcessing):
    """Noise: add Gaussian noise to the probabilities, clip at 0 and renormalise.

    Perturbing the confidence vector degrades the gradient signal a query-based inversion
    estimates (e.g. the output-perturbation baselines MIBench compares). Each query's noise
    is drawn from a generator seeded with ``seed`` and the query's own seed (a hash of the
    image, given by the serving side), so a run is reproducible, an image's answer does not
    depend on the batch it is asked in, and asking the same image again returns the same
    answer (the noise cannot be averaged away by repetition).
    Threat model: black-box and label-only queries (the top-1 label may change).
    """

    class Params(Params):
        """Noise scale and seed."""

        std: float = Field(0.01, gt=0.0, le=1.0, description="standard deviation of the noise")
        seed: int = Field(0, ge=0, description="seed of the noise stream")

    def __call__(self, probs: Tensor, *, seeds: Tensor | None = None) -> Tensor:
        """``probs + N(0, std^2)``, clipped at 0, rows renormalised to sum to 1.

        Row ``i``'s noise is drawn from a generator seeded with ``seed`` and ``seeds[i]``
        (the query's seed; the row's index when ``seeds`` is None).
        """
        n, k = probs.shape
        rows = list(range(n)) if seeds is None else [int(s) for s in seeds.tolist()]
        gen = torch.Generator()
        noise = torch.empty((n, k), dtype=torch.float32)
        for i, row_seed in enumerate(rows):
            gen.manual_seed((self.params.seed * 1_000_003 + row_seed) % (2**63))
            noise[i] = torch.randn(k, generator=gen)
        noisy = probs + self.params.std * noise.to(probs.device, probs.dtype)
        noisy = noisy.clamp_min(0.0)
        total = noisy.sum(dim=1, keepdim=True)
        uniform = torch.full_like(noisy, 1.0 / noisy.shape[1])
        return torch.where(total > 0, noisy / total.clamp_min(1e-12), uniform)
