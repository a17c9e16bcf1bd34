"""Types every layer shares (attacks produce them, metrics and reports read them)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["Reconstruction", "UpdateInference"]


@dataclass(frozen=True)
class Reconstruction:
    """What an attack returns.

    Attributes:
        images: (N, C, H, W) float32 in [0, 1], on the CPU.
        labels: (N,) int64, the target label each image reconstructs.
        scores: (N,) float32, the attack's own score (higher = more confident).
        queries: number of target queries the attack used.
    """

    images: Tensor
    labels: Tensor
    scores: Tensor
    queries: int = 0

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class UpdateInference:
    """What an attack on a model's updates returns (one row per update, in version order).

    Attributes:
        label_dist: (N, K) float32, each row the inferred label distribution of an update
            set (sums to 1).
        images: (N, C, H, W) float32 in [0, 1] on the CPU, the reconstructed sample of each
            single-sample update, or ``None`` when the attack infers labels only.
        queries: number of target queries the attack used.
    """

    label_dist: Tensor
    images: Tensor | None = None
    queries: int = 0

    def __len__(self) -> int:
        return int(self.label_dist.shape[0])
