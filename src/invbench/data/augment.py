"""Differentiable image augmentations: random crops, flips and shifts, torch only.

Attacks pass reconstructions through random augmentations before the target sees them, so
that what they optimise is robust to small geometric changes rather than an adversarial
pattern tied to exact pixel positions: DeepInversion's random jitter (``torch.roll``) and
flips (Yin et al., CVPR 2020, https://arxiv.org/abs/1912.08795), Plug-and-Play Attacks'
random resized crops, flips and the final selection under augmentation (Struppek et al.,
ICML 2022, https://arxiv.org/abs/2201.12179). Defenses use them too (Trap-MID augments
clean and triggered training images), so they live in the data layer; attacks import them
through :mod:`invbench.attacks.components`.

Every augmentation is an :class:`Augment`: ``aug(x, *, generator) -> Tensor`` that keeps the
shape ``(B, C, H, W)`` and the range [0, 1] (crops interpolate bilinearly inside the image,
shifts and rolls move pixels, flips mirror them), is differentiable with respect to ``x``
(index gathers and :func:`torch.nn.functional.grid_sample`, no host synchronisation), and
draws its randomness from ``generator`` only, so the same seed gives the same views.
Random numbers are drawn on the generator's device and moved to the images' device.

The deterministic primitives (:func:`hflip`, :func:`shift`, :func:`roll`,
:func:`crop_resize`) take the per-image parameters explicitly.

Example::

    >>> import torch
    >>> aug = make_augment("crop,flip,shift")
    >>> x = torch.rand(4, 1, 8, 8)
    >>> aug(x, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from invbench.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- primitives


def _check_images(x: Tensor, what: str) -> None:
    if x.ndim != 4:
        raise DataError(f"{what}: images must be (B, C, H, W), got shape {tuple(x.shape)}")


def _per_image(v: Tensor | int, n: int, device: torch.device) -> Tensor:
    t = torch.as_tensor(v, dtype=torch.long, device=device)
    return t.expand(n) if t.ndim == 0 else t.to(device)


def hflip(x: Tensor, mask: Tensor | bool = True) -> Tensor:
    """Mirror images left-right where ``mask`` ``(B,)`` (or a bool for all) is true."""
    _check_images(x, "hflip")
    if isinstance(mask, bool):
        return x.flip(-1) if mask else x
    return torch.where(mask.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)


def _gather(x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """``out[b, c, h, w] = x[b, c, rows[b, h], cols[b, w]]`` (differentiable in ``x``)."""
    b = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
    return x[b, :, rows.unsqueeze(2), cols.unsqueeze(1)].permute(0, 3, 1, 2)


def shift(
    x: Tensor,
    dy: Tensor | int,
    dx: Tensor | int,
    *,
    padding: Literal["zeros", "replicate"] = "zeros",
) -> Tensor:
    """Move each image's content by whole pixels: ``out[h, w] = x[h - dy, w - dx]``.

    Positive ``dy`` moves content down, positive ``dx`` right. Pixels that enter from outside
    the image are 0 (``padding="zeros"``, a black border as on digits and MNIST) or copies of
    the nearest edge pixel (``"replicate"``).

    Arguments:
        x: ``(B, C, H, W)``.
        dy, dx: ints, or ``(B,)`` int tensors (one offset per image).
        padding: ``"zeros"`` or ``"replicate"``.

    Example::

        >>> shift(torch.tensor([[[[1.0, 2.0, 3.0]]]]), 0, 1)
        tensor([[[[0., 1., 2.]]]])
    """
    _check_images(x, "shift")
    if padding not in ("zeros", "replicate"):
        raise ConfigError(f"shift padding must be 'zeros' or 'replicate', got '{padding}'")
    n, _, h, w = x.shape
    dy_t, dx_t = _per_image(dy, n, x.device), _per_image(dx, n, x.device)
    rows = torch.arange(h, device=x.device).view(1, -1) - dy_t.view(-1, 1)  # (B, H)
    cols = torch.arange(w, device=x.device).view(1, -1) - dx_t.view(-1, 1)  # (B, W)
    out = _gather(x, rows.clamp(0, h - 1), cols.clamp(0, w - 1))
    if padding == "zeros":
        keep = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
        out = out * keep.unsqueeze(1).to(out.dtype)
    return out


def roll(x: Tensor, dy: Tensor | int, dx: Tensor | int) -> Tensor:
    """Cyclic shift per image, ``out[h, w] = x[(h - dy) mod H, (w - dx) mod W]``.

    With ints this equals ``torch.roll(x, shifts=(dy, dx), dims=(2, 3))`` (DeepInversion's
    jitter); ``(B,)`` tensors roll every image by its own offset.

    Example::

        >>> roll(torch.tensor([[[[1.0, 2.0, 3.0]]]]), 0, 1)
        tensor([[[[3., 1., 2.]]]])
    """
    _check_images(x, "roll")
    n, _, h, w = x.shape
    dy_t, dx_t = _per_image(dy, n, x.device), _per_image(dx, n, x.device)
    rows = (torch.arange(h, device=x.device).view(1, -1) - dy_t.view(-1, 1)) % h
    cols = (torch.arange(w, device=x.device).view(1, -1) - dx_t.view(-1, 1)) % w
    return _gather(x, rows, cols)


def crop_resize(x: Tensor, *, top: Tensor, left: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """Crop a sub-window of each image and resize it back to ``(H, W)`` (bilinear).

    The window of image ``b`` is given as fractions of the image: its top-left corner
    ``(top[b], left[b])`` and size ``(height[b], width[b])``, all ``(B,)`` floats with
    ``0 <= top``, ``top + height <= 1`` (likewise for left/width). The full window
    ``(0, 0, 1, 1)`` returns ``x`` unchanged (up to float rounding). Values stay in the range
    of ``x`` (bilinear interpolation of pixels inside the window).
    """
    _check_images(x, "crop_resize")
    n = x.shape[0]
    dt, dev = x.dtype, x.device
    sy, sx = height.to(dev, dt), width.to(dev, dt)
    # grid_sample's coordinates run over [-1, 1] across the image (align_corners=False);
    # the window [left, left + width] maps to centre 2 * left + width - 1, half-size width
    cy, cx = 2 * top.to(dev, dt) + sy - 1, 2 * left.to(dev, dt) + sx - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack(
        [torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, [n, *x.shape[1:]], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


# ----------------------------------------------------------------------------- random ones


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator, device=generator.device)


def _offsets(n: int, max_shift: int, generator: torch.Generator, per_image: bool) -> Tensor:
    k = n if per_image else 1
    off = torch.randint(-max_shift, max_shift + 1, (2, k), generator=generator,
                        device=generator.device)
    return off.expand(2, n)


class Augment(ABC):
    """A random, differentiable image augmentation: ``aug(x, *, generator) -> Tensor``.

    Keeps ``(B, C, H, W)`` and the [0, 1] range; draws only from ``generator``.
    """

    @abstractmethod
    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        """Augmented copy of ``x`` (same shape), differentiable with respect to ``x``."""


class RandomResizedCrop(Augment):
    """A random sub-window per image, resized back to the full size (PPA's crop).

    The window covers a fraction ``s ~ U(scale)`` of the image area with aspect ratio
    ``r`` (``log r ~ U(log ratio)``): height ``sqrt(s / r)``, width ``sqrt(s * r)`` (each
    capped at 1), placed uniformly inside the image. ``scale=(1, 1), ratio=(1, 1)`` is the
    identity. Like torchvision's ``RandomResizedCrop`` (PPA uses ``scale=(0.5, 0.9)`` and
    ``ratio=(0.8, 1.25)`` on 224 px faces); the default here is milder for 8-28 px images.

    Example::

        >>> crop = RandomResizedCrop(scale=(0.8, 1.0))
        >>> crop(torch.rand(2, 1, 8, 8), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.8, 1.0),
        ratio: tuple[float, float] = (0.9, 1.1),
    ) -> None:
        lo, hi = (float(s) for s in scale)
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"RandomResizedCrop scale must satisfy 0 < lo <= hi <= 1, "
                              f"got {tuple(scale)}")
        rlo, rhi = (float(r) for r in ratio)
        if not 0 < rlo <= rhi:
            raise ConfigError(f"RandomResizedCrop ratio must satisfy 0 < lo <= hi, "
                              f"got {tuple(ratio)}")
        self.scale, self.ratio = (lo, hi), (rlo, rhi)

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        _check_images(x, "RandomResizedCrop")
        n = x.shape[0]
        area = _uniform(n, *self.scale, generator)
        log_r = _uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), generator)
        r = log_r.exp()
        h = (area / r).sqrt().clamp(max=1.0)
        w = (area * r).sqrt().clamp(max=1.0)
        top = (1 - h) * torch.rand(n, generator=generator, device=generator.device)
        left = (1 - w) * torch.rand(n, generator=generator, device=generator.device)
        return crop_resize(x, top=top, left=left, height=h, width=w)

    def __repr__(self) -> str:
        return f"RandomResizedCrop(scale={self.scale}, ratio={self.ratio})"


class RandomFlip(Augment):
    """Horizontal (left-right) flip with probability ``p``, per image or for the whole batch.

    ``per_image=False`` flips all images of a call together, as DeepInversion's reference
    code does.

    Example::

        >>> x = torch.rand(3, 1, 4, 4)
        >>> torch.equal(RandomFlip(p=1.0)(x, generator=torch.Generator()), x.flip(-1))
        True
    """

    def __init__(self, p: float = 0.5, *, per_image: bool = True) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"RandomFlip p must be in [0, 1], got {p}")
        self.p, self.per_image = float(p), bool(per_image)

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        _check_images(x, "RandomFlip")
        n = x.shape[0]
        u = torch.rand(n if self.per_image else 1, generator=generator, device=generator.device)
        return hflip(x, (u < self.p).expand(n))

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p}, per_image={self.per_image})"


class RandomShift(Augment):
    """Integer shift by ``dy, dx ~ U{-max_shift..max_shift}`` per image (see :func:`shift`).

    Content leaving the image is lost; what enters is 0 (``padding="zeros"``, the default:
    the black background of digits/MNIST) or the replicated edge (``"replicate"``).

    Example::

        >>> RandomShift(0)(torch.ones(1, 1, 2, 2), generator=torch.Generator()).sum()
        tensor(4.)
    """

    def __init__(
        self, max_shift: int = 1, *, padding: Literal["zeros", "replicate"] = "zeros"
    ) -> None:
        if int(max_shift) < 0:
            raise ConfigError(f"RandomShift max_shift must be >= 0, got {max_shift}")
        if padding not in ("zeros", "replicate"):
            raise ConfigError(f"RandomShift padding must be 'zeros' or 'replicate', "
                              f"got '{padding}'")
        self.max_shift, self.padding = int(max_shift), padding

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        _check_images(x, "RandomShift")
        off = _offsets(x.shape[0], self.max_shift, generator, per_image=True)
        return shift(x, off[0], off[1], padding=self.padding)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift}, padding='{self.padding}')"


class Jitter(Augment):
    """DeepInversion's random jitter: a cyclic roll by ``U{-max_shift..max_shift}`` pixels.

    Content leaving one side re-enters on the other (:func:`roll`). By default one offset
    moves the whole batch (as the reference code's ``torch.roll``); ``per_image=True`` draws
    one per image.

    Example::

        >>> x = torch.rand(2, 1, 4, 4)
        >>> torch.equal(Jitter(0)(x, generator=torch.Generator()), x)
        True
    """

    def __init__(self, max_shift: int = 1, *, per_image: bool = False) -> None:
        if int(max_shift) < 0:
            raise ConfigError(f"Jitter max_shift must be >= 0, got {max_shift}")
        self.max_shift, self.per_image = int(max_shift), bool(per_image)

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        _check_images(x, "Jitter")
        off = _offsets(x.shape[0], self.max_shift, generator, per_image=self.per_image)
        return roll(x, off[0], off[1])

    def __repr__(self) -> str:
        return f"Jitter(max_shift={self.max_shift}, per_image={self.per_image})"


class Compose(Augment):
    """Apply augmentations in order; ``Compose([])`` is the identity.

    Example::

        >>> aug = Compose([Jitter(1), RandomFlip()])
        >>> aug(torch.rand(2, 1, 8, 8), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, augments: Sequence[Augment]) -> None:
        bad = [a for a in augments if not isinstance(a, Augment)]
        if bad:
            raise ConfigError(f"Compose takes Augment objects, got {type(bad[0]).__name__}")
        self.augments = list(augments)

    def __call__(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        _check_images(x, "Compose")
        for aug in self.augments:
            x = aug(x, generator=generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.augments!r})"


#: names :func:`make_augment` accepts, with what the optional ``:value`` sets
AUGMENTS: dict[str, str] = {
    "crop": "RandomResizedCrop; value = smallest area fraction (default 0.8)",
    "flip": "RandomFlip; value = probability (default 0.5)",
    "shift": "RandomShift with zero padding; value = max pixels (default 1)",
    "jitter": "Jitter (roll); value = max pixels (default 1)",
}


def make_augment(spec: str) -> Compose:
    """Build an augmentation pipeline from a comma-separated spec, applied left to right.

    Each item is a name of :data:`AUGMENTS`, optionally with ``:value``, e.g.
    ``"crop,flip,shift"``, ``"crop:0.6,flip:0.5,shift:2"`` or ``"jitter:2,flip"``;
    ``"none"`` or ``""`` is the identity.

    Raises:
        ConfigError: an unknown name or a bad value (the message lists the allowed names).
    """
    items = [s.strip() for s in str(spec).split(",") if s.strip()]
    if items == ["none"] or not items:
        return Compose([])
    out: list[Augment] = []
    for item in items:
        name, _, value = item.partition(":")
        name = name.strip()
        if name not in AUGMENTS:
            raise ConfigError(f"unknown augmentation '{name}' in '{spec}'; choose from: "
                              f"{', '.join(AUGMENTS)} (comma-separated, optional ':value')")
        try:
            v = float(value) if value.strip() else None
        except ValueError:
            raise ConfigError(f"augmentation '{item}': the value after ':' must be a number"
                              ) from None
        if name == "crop":
            out.append(RandomResizedCrop(scale=(0.8 if v is None else v, 1.0)))
        elif name == "flip":
            out.append(RandomFlip(p=0.5 if v is None else v))
        else:
            k = 1 if v is None else v
            if k != int(k):
                raise ConfigError(f"augmentation '{item}': the shift must be whole pixels")
            out.append(RandomShift(int(k)) if name == "shift" else Jitter(int(k)))
    return Compose(out)
