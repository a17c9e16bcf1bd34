"""Image transforms on (N, C, H, W) tensors in [0, 1], in torch only (no torchvision)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize a batch to ``size`` (bilinear, antialiased when shrinking), clamped to [0, 1]."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    shrink = hw[0] < x.shape[-2] or hw[1] < x.shape[-1]
    out = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp_(0.0, 1.0)


def augment_batch(
    x: Tensor,
    *,
    max_shift: int = 1,
    flip: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random translation by up to ``max_shift`` pixels (zero padding), optional h-flip.

    One shift per image, applied with a single ``grid_sample``-free gather: the batch is
    padded once and each image is cropped at its own offset.
    """
    n, _, h, w = x.shape
    if max_shift > 0:
        padded = F.pad(x, (max_shift,) * 4)
        dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device="cpu")
        dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator, device="cpu")
        rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)  # (n, h)
        cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)  # (n, w)
        idx_n = torch.arange(n, device=x.device).view(n, 1, 1)
        # gather (n, c, h, w): index padded[n, :, rows[n, i], cols[n, j]]
        out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)]
        x = out.permute(0, 3, 1, 2).contiguous()
    if flip:
        mask = torch.rand(n, generator=generator, device="cpu") < 0.5
        if mask.any():
            x = x.clone()
            m = mask.to(x.device)
            x[m] = x[m].flip(-1)
    return x
