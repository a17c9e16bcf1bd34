"""What the training loops share: argument checks, the loss type, the log interval."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.errors import ConfigError, DataError

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]

_LOG_EVERY = 25  # steps between progress-bar loss updates (the only host syncs in the loops)


def _cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y)


def _check_positive(name: str, value: object, *, integer: bool) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0:
        what = "an int >= 1" if integer else "a number > 0"
        raise ConfigError(f"{name} must be {what}, got {value!r}")


def _check_non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{name} must be a number >= 0, got {value!r}")


def _check_labels(x: Tensor, y: object, *, what: str) -> Tensor:
    if not isinstance(y, Tensor):
        raise DataError(f"{what}: labels must be a torch.Tensor, got {type(y).__name__}")
    if y.ndim != 1:
        raise DataError(f"{what}: labels must have shape (N,), got {tuple(y.shape)}")
    if y.shape[0] != x.shape[0]:
        raise DataError(f"{what}: {x.shape[0]} images but {y.shape[0]} labels")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise DataError(f"{what}: labels must be integer class ids, got dtype {y.dtype}")
    return y.long()


def _check_betas(betas: tuple[float, float]) -> None:
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"betas must be two numbers in [0, 1), got {betas!r}")


def _int_attribute(generator: nn.Module, name: str) -> int:
    """A GAN generator's ``latent_dim`` / ``num_classes``, checked to be an int >= 1."""
    value = getattr(generator, name, None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"generator must have an int attribute '{name}' >= 1")
    return value


def _check_generated_shape(probe: Tensor, x: Tensor, *, what: str) -> None:
    """The generator's images (``probe``) have the training images' shape."""
    if tuple(probe.shape[1:]) != tuple(x.shape[1:]):
        raise DataError(
            f"{what}: images of shape {tuple(x.shape[1:])} but the generator makes "
            f"{tuple(probe.shape[1:])}"
        )


def _fork_devices(device: torch.device) -> list[int]:
    if device.type == "cuda":
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


def _output_width(model: nn.Module, x: Tensor, *, what: str) -> int:
    """Number of logits ``model`` gives for one image of ``x`` (probed in eval mode).

    The probe leaves torch's global RNG untouched (a model may sample in eval mode).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=_fork_devices(x.device)), torch.inference_mode():
            out = model(x[:1])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{what}: the model rejects images of shape {tuple(x.shape[1:])} ({first})"
        ) from exc
    finally:
        model.train(was_training)
    if out.ndim != 2:
        raise DataError(
            f"{what}: the model must return logits (B, classes), got shape {tuple(out.shape)}"
        )
    return int(out.shape[1])


def _check_label_range(y: Tensor, width: int, *, what: str) -> None:
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= width:
        raise DataError(
            f"{what}: labels must lie in [0, {width - 1}] (the model has {width} outputs), "
            f"got [{lo}, {hi}]"
        )


def default_max_shift(height: int) -> int:
    """Augmentation shift in pixels: 1 up to 16 px, then about height/16 (2 at 32 px, 4 at 64)."""
    if height <= 16:
        return 1
    return max(2, min(4, round(height / 16)))
