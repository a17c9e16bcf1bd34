"""invbench: model inversion attacks, defenses and a reproducible benchmark.

Bring your own model::

    import invbench
    rec = invbench.invert("mi-face", model, labels=[0, 1, 2], image_shape=(1, 8, 8), steps=500)
    rec.images  # (3, 1, 8, 8) reconstructions in [0, 1]
    rec.labels  # tensor([0, 1, 2])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from torch import nn

    from invbench.types import Reconstruction

__all__ = ["__version__", "invert"]


def invert(
    attack: str,
    model: nn.Module,
    *,
    labels: list[int],
    image_shape: tuple[int, int, int],
    per_label: int = 1,
    seed: int = 0,
    device: str | None = None,
    quiet: bool = True,
    **params: Any,
) -> Reconstruction:
    """Run a registered white-box attack that needs no public data on any logits model.

    Arguments:
        attack: a registered attack name, e.g. ``"mi-face"`` (see ``invbench list``).
        model: an ``nn.Module`` mapping images (N, *image_shape) in [0, 1] to logits (N, K).
        labels: the output classes to reconstruct.
        image_shape: (C, H, W) of the model's input.
        per_label: reconstructions per label.
        seed: the random seed (the same seed gives the same images).
        device: where to run (default: the model's device).
        **params: the attack's hyperparameters (e.g. ``steps=500``).

    Returns:
        a :class:`~invbench.attacks.base.Reconstruction` with ``.images`` (N, C, H, W) in [0, 1],
        ``.labels`` and ``.scores``.
    """
    import torch

    from invbench.access import WhiteBox
    from invbench.config import check_device
    from invbench.errors import ConfigError
    from invbench.models.stochastic import reseed
    from invbench.registry import ATTACKS

    cls = ATTACKS.get(attack)
    if cls.access != "white-box" or cls.needs_public:
        raise ConfigError(
            f"invert() runs white-box attacks that need no public data; '{attack}' needs "
            f"{cls.access} access{' and public data' if cls.needs_public else ''} — use the "
            "benchmark runner (invbench run) for it"
        )
    if len(image_shape) != 3 or any(int(s) < 1 for s in image_shape):
        raise ConfigError(f"image_shape must be (C, H, W) with positive sizes, got {image_shape}")
    shape = tuple(int(s) for s in image_shape)
    atk = cls(**params)
    if device is not None:
        model = model.to(check_device(device))
    was_training = model.training
    model.eval()
    try:
        dev = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad():
            out = model(torch.zeros((1, *shape), device=dev))
        if out.ndim != 2:
            raise ConfigError(
                f"the model must return logits of shape (N, K), got {tuple(out.shape)}"
            )
        access = WhiteBox(model, num_classes=int(out.shape[1]), image_shape=shape)  # type: ignore[arg-type]
        torch.manual_seed(seed)
        reseed(model, seed)  # a model that samples at prediction time (MID) samples reproducibly
        return atk.invert(access, labels, per_label, seed=seed, quiet=quiet)
    finally:
        model.train(was_training)
