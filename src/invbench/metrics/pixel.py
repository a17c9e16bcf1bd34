"""PSNR and SSIM of each reconstruction to its nearest same-class private training image.

MIBench's pixel-space fidelity: every reconstruction is paired with the private *training*
image of its class that is nearest in squared L2 over pixels (the image of highest PSNR,
:func:`~invbench.metrics.knn.nearest_same_class`), and the pair is scored with

* **PSNR** — ``10 log10(1 / MSE)`` in dB for images in [0, 1] (data range 1);
* **SSIM** — Wang, Bovik, Sheikh, Simoncelli, "Image Quality Assessment: From Error
  Visibility to Structural Similarity", IEEE Transactions on Image Processing 13(4), 2004
  (https://doi.org/10.1109/TIP.2003.819861).

Pure pixels: no evaluator is involved. Higher = closer to a real private image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from invbench.errors import DataError
from invbench.metrics.base import Metric, MetricOutput
from invbench.metrics.knn import nearest_same_class
from invbench.registry import register_metric

if TYPE_CHECKING:
    from invbench.metrics.context import EvalContext
    from invbench.types import Reconstruction

#: PSNR of an exact copy (MSE 0) and the most any image scores, in dB, so means stay finite
PSNR_CAP = 100.0
#: SSIM's Gaussian window: standard deviation and (largest) size, and the stabilising constants
SSIM_SIGMA, SSIM_WINDOW, SSIM_K1, SSIM_K2 = 1.5, 11, 0.01, 0.03


def _pair(a: Tensor, b: Tensor, *, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.ndim != 4 or a.shape != b.shape:
        shapes = [tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in (a, b)]
        raise DataError(
            f"{what}: expected two image batches of one shape (N, C, H, W), got {shapes}"
        )
    return a.detach().double(), b.detach().double()


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Peak signal-to-noise ratio per image pair, in dB (data range 1).

    ``10 log10(1 / MSE)`` with MSE the mean squared difference over all ``C*H*W`` values of
    each pair, capped at :data:`PSNR_CAP` = 100 dB (an exact copy, MSE 0, scores 100 instead
    of infinity). Inputs: two (N, C, H, W) batches in [0, 1]; output (N,) float64. Higher =
    more similar; MSE 0.01 gives 20 dB.

    Example::

        psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))   # tensor([20.0000])
    """
    x, y = _pair(a, b, what="psnr")
    mse = (x - y).square().flatten(1).mean(1)
    return (10 * torch.log10(1 / mse)).clamp(max=PSNR_CAP)


def ssim_window_size(height: int, width: int) -> int:
    """SSIM's window side: 11, shrunk to the largest odd size <= min(H, W) (7 for 8x8 images).

    Example: ``ssim_window_size(28, 28) == 11``, ``ssim_window_size(8, 8) == 7``.
    """
    size = min(SSIM_WINDOW, height, width)
    return size if size % 2 == 1 else size - 1


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Structural similarity per image pair (Wang et al., IEEE TIP 2004), data range 1.

    Local means, variances and covariance are taken under a normalised Gaussian window of
    standard deviation 1.5 and side 11 (shrunk by :func:`ssim_window_size` for small images,
    e.g. 7 for 8x8 digits; sigma stays 1.5), without padding; at every valid window
    position::

        SSIM = (2 mu_a mu_b + C1)(2 cov_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))

    with ``C1 = (0.01)^2``, ``C2 = (0.03)^2`` and the window-weighted (biased) moments of
    Wang et al.'s reference code. The map is averaged over positions and channels: one value
    per image. Inputs: two (N, C, H, W) batches in [0, 1]; output (N,) float64 in [-1, 1];
    1 for identical images, higher = more similar.

    Example::

        x = torch.rand(2, 1, 28, 28)
        ssim(x, x)   # tensor([1., 1.])
    """
    x, y = _pair(a, b, what="ssim")
    channels, height, width = x.shape[1:]
    size = ssim_window_size(height, width)
    t = torch.arange(size, dtype=torch.float64, device=x.device) - (size - 1) / 2
    g = torch.exp(-t.square() / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).expand(channels, 1, size, size)

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x.square()
    var_y = blur(y * y) - mu_y.square()
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    return (num / den).flatten(1).mean(1)


@register_metric("pixel")
class PixelFidelity(Metric):
    """PSNR and SSIM to the nearest same-class private training image (pixel space).

    For each reconstruction, the private training image of its class nearest in squared L2
    over pixels (:func:`~invbench.metrics.knn.nearest_same_class`; equivalently the one of
    highest PSNR) is the reference for both scores. Returns ``psnr`` (dB, :func:`psnr`,
    each image capped at 100 dB) and ``ssim`` (:func:`ssim`, Wang et al., IEEE TIP 2004),
    each averaged over reconstructions; higher = closer to a real private image (better for
    the attacker). Per image: ``img_psnr``, ``img_ssim`` and ``img_nearest`` (the index into
    ``protocol.private_train`` of the nearest image). Needs no evaluator.

    Example::

        evaluate(recon, ctx, metrics=["pixel"])   # {"psnr": 14.2, "ssim": 0.31}
    """

    requires = ()
    rates = ()
    keys = ("psnr", "ssim")

    def compute(self, recon: Reconstruction, ctx: EvalContext) -> MetricOutput:
        train = ctx.protocol.private_train
        images = recon.images.detach().cpu()
        refs = train.x.detach().cpu()
        _, index = nearest_same_class(
            images.flatten(1), recon.labels.cpu().long(), refs.flatten(1), train.y.cpu().long()
        )
        nearest = refs[index]
        img_psnr, img_ssim = psnr(images, nearest), ssim(images, nearest)
        out: MetricOutput = {
            "psnr": float(img_psnr.mean()) if len(recon) else None,
            "ssim": float(img_ssim.mean()) if len(recon) else None,
        }
        out.update(img_psnr=img_psnr.float(), img_ssim=img_ssim.float(), img_nearest=index)
        return out

