"""Types every layer shares (attacks produce them, metrics and reports read them)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["Reconstruction"]


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
