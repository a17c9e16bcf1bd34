"""Image priors: per-image smoothness and magnitude penalties."""

from __future__ import annotations

from torch import Tensor


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation per image, averaged over pixels: ``(B, C, H, W) -> (B,)``.

    ``mean |x[h+1, w] - x[h, w]| + mean |x[h, w+1] - x[h, w]|``; the mean (rather than the
    sum) makes a weight mean the same thing at every resolution. Smoothness prior used by
    image-space inversion (Mahendran & Vedaldi 2015; MI-Face's optional regulariser here).

    Example::

        >>> import torch
        >>> float(total_variation(torch.zeros(1, 1, 4, 4))[0])
        0.0
    """
    dh = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(dim=1)
    dw = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(dim=1)
    return dh + dw


def l2_prior(x: Tensor) -> Tensor:
    """Mean squared pixel value per image, ``||x||^2 / (C*H*W)``: ``(B, C, H, W) -> (B,)``.

    Pulls pixels towards 0 (the background of digit/MNIST-like images); normalised by the
    number of pixels so a weight is resolution-independent.

    Example::

        >>> import torch
        >>> float(l2_prior(torch.ones(2, 1, 3, 3))[1])
        1.0
    """
    return x.pow(2).flatten(1).mean(dim=1)
