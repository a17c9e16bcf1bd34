"""Image grids that put each class's real private samples next to its reconstructions.

Layout (all sizes in output pixels; ``PAD`` = 2, ``SEP`` = 4)::

    | label | PAD | private x P (cell + PAD each) | separator (SEP) | PAD | recon x R (cell + PAD) |

One row per class that has reconstructions, in label order; a cell is the image upscaled by
nearest neighbour (``scale`` x), so 8x8 digits stay crisp. ``P`` is
``min(private_columns, most private samples of a class)`` and ``R`` is
``min(columns, most reconstructions of a class)``; a class with fewer leaves its cells
empty (background). Height is ``PAD + rows * (cell_h + PAD)`` with
``cell_h = max(H * scale, text height)``. The background is dark grey, the separator a light
vertical bar, so black and white images both stand out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from invbench._io import atomic_path
from invbench.errors import ConfigError, DataError

PAD = 2
SEP = 4
BACKGROUND = (48, 48, 48)
SEPARATOR = (230, 160, 40)
TEXT = (255, 255, 255)


def _as_rgb_uint8(images: torch.Tensor, what: str) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) float in [0, 1] -> (N, H, W, 3) uint8."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    x = images.detach()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise DataError(
            f"{what} must have shape (N, C, H, W) with C = 1 or 3; got {tuple(images.shape)}"
        )
    x = x.to(device="cpu", dtype=torch.float32)
    if not torch.isfinite(x).all():
        raise DataError(f"{what} contains NaN or Inf values")
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).contiguous().numpy()


def _as_labels(labels: torch.Tensor, n: int, what: str) -> np.ndarray:
    lab = torch.as_tensor(labels).detach().to("cpu")
    if lab.dim() != 1 or lab.shape[0] != n:
        raise DataError(f"{what} must be a 1-D tensor of {n} labels; got {tuple(lab.shape)}")
    if lab.is_floating_point() or lab.dtype == torch.bool:
        raise DataError(f"{what} must hold integer class labels; got dtype {lab.dtype}")
    return lab.to(torch.int64).numpy()


def _label_text(label: int, class_names: Sequence[str] | Mapping[int, str] | None) -> str:
    if class_names is None:
        return str(label)
    try:
        name = class_names[label]
    except (IndexError, KeyError):
        raise DataError(f"class_names has no entry for label {label}") from None
    return str(label) if str(name) == str(label) else f"{label}: {name}"


def save_comparison_grid(
    path: str | Path,
    *,
    private: torch.Tensor,
    private_labels: torch.Tensor,
    recon: torch.Tensor,
    recon_labels: torch.Tensor,
    class_names: Sequence[str] | Mapping[int, str] | None,
    columns: int = 8,
    scale: int = 8,
    private_columns: int = 4,
) -> Path:
    """Write a PNG (or any Pillow format, by suffix) comparing private data and reconstructions.

    Args:
        path: output file; written atomically, parent folders created.
        private: real private training images, (N, C, H, W) in [0, 1], C = 1 or 3.
        private_labels: (N,) integer labels of ``private``.
        recon: reconstructions, (M, C, H, W) in [0, 1] (same H, W as ``private``).
        recon_labels: (M,) the class each reconstruction targets.
        class_names: names indexed by label (list or dict), or None for bare numbers.
        columns: most reconstructions shown per class.
        scale: nearest-neighbour upscaling factor.
        private_columns: most private samples shown per class.

    Returns the path. Example::

        save_comparison_grid("grid.png", private=x, private_labels=y, recon=rec.images,
                             recon_labels=rec.labels, class_names=protocol.class_names)
    """
    for name, val in (("columns", columns), ("scale", scale), ("private_columns", private_columns)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ConfigError(f"The '{name}' option of the image grid must be an int >= 1. "
                              f"Got {val!r} instead.")
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"grid path {path} needs an image suffix such as .png or .jpg")
    priv = _as_rgb_uint8(private, "private")
    rec = _as_rgb_uint8(recon, "recon")
    if priv.shape[1:3] != rec.shape[1:3]:
        raise DataError(
            f"private images are {priv.shape[1]}x{priv.shape[2]} but reconstructions are "
            f"{rec.shape[1]}x{rec.shape[2]}; they must have the same size"
        )
    plab = _as_labels(private_labels, priv.shape[0], "private_labels")
    rlab = _as_labels(recon_labels, rec.shape[0], "recon_labels")
    classes = [int(c) for c in np.unique(rlab)]
    if not classes:
        raise DataError("recon is empty: there is nothing to put in the grid")

    priv_by = {c: np.flatnonzero(plab == c)[:private_columns] for c in classes}
    rec_by = {c: np.flatnonzero(rlab == c)[:columns] for c in classes}
    n_priv = max(len(v) for v in priv_by.values())
    n_rec = max(len(v) for v in rec_by.values())

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = {c: _label_text(c, class_names) for c in classes}
    boxes = {c: probe.textbbox((0, 0), t, font=font) for c, t in texts.items()}
    text_w = max(b[2] - b[0] for b in boxes.values())
    text_h = max(b[3] - b[1] for b in boxes.values())

    h, w = priv.shape[1] * scale, priv.shape[2] * scale
    cell_h = max(h, text_h)
    label_w = text_w + 2 * PAD + 2
    x_priv = label_w + PAD
    x_sep = x_priv + n_priv * (w + PAD)
    x_rec = x_sep + SEP + PAD
    width = x_rec + n_rec * (w + PAD)
    height = PAD + len(classes) * (cell_h + PAD)

    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    canvas[:, x_sep : x_sep + SEP] = SEPARATOR

    def up(img: np.ndarray) -> np.ndarray:
        return img.repeat(scale, axis=0).repeat(scale, axis=1)

    for row, c in enumerate(classes):
        y = PAD + row * (cell_h + PAD) + (cell_h - h) // 2
        for j, idx in enumerate(priv_by[c]):
            x = x_priv + j * (w + PAD)
            canvas[y : y + h, x : x + w] = up(priv[idx])
        for j, idx in enumerate(rec_by[c]):
            x = x_rec + j * (w + PAD)
            canvas[y : y + h, x : x + w] = up(rec[idx])

    image = Image.fromarray(canvas, mode="RGB")
    draw = ImageDraw.Draw(image)
    for row, c in enumerate(classes):
        b = boxes[c]
        y_text = PAD + row * (cell_h + PAD) + (cell_h - (b[3] - b[1])) // 2 - b[1]
        draw.text((PAD - b[0], y_text), texts[c], fill=TEXT, font=font)

    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt)
    return path
