"""Random erasing as a model inversion defense (MIDRE; Nguyen et al., TMLR 2025)."""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.errors import ConfigError
from invbench.params import Params
from invbench.registry import register_defense


def erase_random_squares(
    x: Tensor,
    *,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (1.0, 1.0),
    p: float = 1.0,
    fill: Tensor | float = 0.0,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Erase one random rectangle per image (Zhong et al., AAAI 2020), vectorised.

    For each image, with probability ``p``: an area fraction ``s ~ U(scale)`` and an aspect
    ratio ``r`` with ``log r ~ U(log ratio)`` give a ``h x w`` window, ``h = round(sqrt(s r
    H W))``, ``w = round(sqrt(s H W / r))`` (clamped to the image), placed uniformly inside
    the image; its pixels are set to ``fill`` (a number, or a ``(C,)`` tensor per channel).
    As torchvision's ``RandomErasing`` except that a window that does not fit is clamped
    instead of redrawn (with ``ratio`` 1 and ``scale`` up to 1 it always fits).

    Returns:
        ``(erased images, mask)``: the images ``(B, C, H, W)`` and the erased pixels
        ``(B, 1, H, W)`` as a bool mask.

    Example::

        >>> x = torch.ones(2, 1, 10, 10)
        >>> out, mask = erase_random_squares(x, scale=(0.25, 0.25), generator=torch.Generator())
        >>> mask.flatten(1).sum(1).tolist()   # a 5 x 5 square in each image
        [25, 25]
    """
    b, c, h, w = x.shape
    dev = x.device
    g_dev = generator.device

    def uniform(lo: float, hi: float) -> Tensor:
        return (lo + (hi - lo) * torch.rand(b, generator=generator, device=g_dev)).to(dev)

    area = uniform(*scale) * (h * w)
    log_r = uniform(math.log(ratio[0]), math.log(ratio[1]))
    r = log_r.exp()
    eh = (area * r).sqrt().round().clamp(1, h).long()
    ew = (area / r).sqrt().round().clamp(1, w).long()
    top = (uniform(0.0, 1.0) * (h - eh + 1).float()).floor().long().clamp(max=h - 1)
    left = (uniform(0.0, 1.0) * (w - ew + 1).float()).floor().long().clamp(max=w - 1)
    on = uniform(0.0, 1.0) < p
    rows = torch.arange(h, device=dev).view(1, h)
    cols = torch.arange(w, device=dev).view(1, w)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + eh).view(-1, 1))
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + ew).view(-1, 1))
    mask = (in_rows.unsqueeze(2) & in_cols.unsqueeze(1) & on.view(-1, 1, 1)).unsqueeze(1)
    value = torch.as_tensor(fill, dtype=x.dtype, device=dev).reshape(-1)
    value = value.view(1, -1, 1, 1) if value.numel() == c else value.view(1, 1, 1, 1)
    return torch.where(mask, value.expand(b, c, h, w), x), mask


@register_defense("random-erasing")
class RandomErasing(Defense):
    """MIDRE: train on images with a random square erased (Nguyen et al., TMLR 2025).

    Paper: Nguyen et al., "Random Erasing vs. Model Inversion: A Promising Defense or a
    False Hope?" (MIDRE), TMLR 2025 (reference code: github.com/ngoc-nguyen-0/MIDRE_TMLR).
    Every training image loses a random square (partial erasure at a random location), so
    the model never sees a whole object; the paper shows this moves the features of
    inverted images away from those of the private data while keeping natural accuracy.

    Threat model: a training-time defense; it changes the model, so it applies to every
    access level.

    Defaults are the reference configuration's: probability ``p`` 1 (every image),
    erased area fraction ``scale_min`` 0.1 to ``scale_max`` 0.4 (the paper's stronger
    setting: 0.8), aspect ratio 1 (squares), filled with the mean pixel of the training
    images per channel (the reference fills with the ImageNet mean colour, its data's
    mean). ``scale_max`` is the strength to sweep. The erasing comes after the run's own
    augmentation (random shifts, ``train.augment``); the reference also crops, flips and
    jitters colour.

    Example::

        model = RandomErasing(scale_max=0.8).train(protocol, seed=0)
    """

    class Params(Params):
        """MIDRE's parameters (the reference configuration's values)."""

        p: float = Field(1.0, ge=0.0, le=1.0, description="probability an image is erased")
        scale_min: float = Field(
            0.1, gt=0.0, le=1.0, description="smallest erased fraction of the image area"
        )
        scale_max: float = Field(
            0.4, gt=0.0, le=1.0,
            description="largest erased fraction of the image area (the strength; paper: "
            "0.4 and 0.8)",
        )
        fill: float | None = Field(
            None, ge=0.0, le=1.0,
            description="value of erased pixels; None: the training images' mean per channel",
        )

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        p = self.params
        if p.scale_min > p.scale_max:
            raise ConfigError(
                f"The 'scale_min' parameter of defense '{self.name}' must be <= scale_max "
                f"({p.scale_max}). Got {p.scale_min} instead."
            )

    def train_hooks(
        self, model: nn.Module, data: TrainingData, config: TrainConfig, seed: int
    ) -> dict[str, Any]:
        """Erase a random square of every training batch's images (``batch_fn``)."""
        p = self.params
        x = data.private_train.x
        fill: Tensor | float = x.mean(dim=(0, 2, 3)) if p.fill is None else float(p.fill)

        def erase(xb: Tensor, yb: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
            out, _ = erase_random_squares(
                xb, scale=(p.scale_min, p.scale_max), p=p.p, fill=fill, generator=gen
            )
            return out, yb

        return {"batch_fn": erase}
