"""Reference points every evaluation is reported next to.

An attack score means little on its own: 60% attack accuracy is impressive if real private
images score 70% and uniform noise 20%, and meaningless the other way round. For the same
labels and number of images an attack produced:

* ``"private_test"`` — held-out private images of those classes: what *real success* looks
  like (the evaluator's score on true class members it never trained on).
* ``"noise"`` — uniform-noise images labelled as those classes: what *no information* looks
  like (chance level, or the evaluator's bias).

:func:`target_accuracy` is the utility side of the trade-off: the target's top-1 accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from invbench.types import Reconstruction
from invbench.errors import ConfigError, DataError
from invbench.metrics.evaluator import derive_seed

if TYPE_CHECKING:
    from invbench.data.protocol import Protocol, Split


def _check_labels(labels: list[int] | Tensor, per_label: int, num_classes: int) -> list[int]:
    lab = [int(v) for v in torch.as_tensor(labels, dtype=torch.long).flatten().tolist()]
    if not lab:
        raise ConfigError("labels: give at least one private class label")
    if int(per_label) < 1:
        raise ConfigError(f"per_label must be >= 1, got {per_label}")
    bad = [v for v in lab if not 0 <= v < num_classes]
    if bad:
        raise ConfigError(
            f"labels {bad} out of range: the protocol has {num_classes} private classes"
        )
    return lab


def reference_reconstructions(
    protocol: Protocol,
    labels: list[int] | Tensor,
    per_label: int,
    *,
    seed: int,
) -> dict[str, Reconstruction]:
    """Real-success and no-information references shaped like an attack's output.

    Args:
        protocol: the protocol under evaluation.
        labels: target labels ``0..k-1`` (as given to ``Attack.invert``).
        per_label: images per label.
        seed: seeds the sampling of test images and the noise.

    Returns:
        ``{"private_test": Reconstruction, "noise": Reconstruction}``, each with
        ``len(labels) * per_label`` images ordered like ``Attack.invert``'s output (labels
        repeated ``per_label`` times each), images (N, C, H, W) in [0, 1], scores all zero,
        queries 0. Test images are drawn without replacement while the class has enough,
        then cycle through a fresh permutation; noise is uniform in [0, 1].

    Example::

        refs = reference_reconstructions(protocol, [0, 1, 2], 8, seed=0)
        evaluate(refs["private_test"], protocol, evaluator)["acc1"]   # ~0.98
    """
    lab = _check_labels(labels, per_label, protocol.num_classes)
    per_label = int(per_label)
    test = protocol.private_test
    y = test.y.cpu().numpy()
    rng = np.random.default_rng(derive_seed(seed, "reference-test"))
    picks: list[np.ndarray] = []
    for c in lab:
        idx = np.flatnonzero(y == c)
        if idx.size == 0:
            raise DataError(f"class {c} has no private test images to use as a reference")
        rounds = -(-per_label // idx.size)
        picks.append(np.concatenate([rng.permutation(idx) for _ in range(rounds)])[:per_label])
    order = torch.from_numpy(np.concatenate(picks)).long()
    rep = torch.tensor(lab, dtype=torch.long).repeat_interleave(per_label)
    n = rep.numel()
    real = Reconstruction(
        images=test.x[order].float().cpu().contiguous(),
        labels=rep.clone(),
        scores=torch.zeros(n),
    )
    gen = torch.Generator().manual_seed(derive_seed(seed, "reference-noise"))
    noise = Reconstruction(
        images=torch.rand((n, *protocol.image_shape), generator=gen),
        labels=rep.clone(),
        scores=torch.zeros(n),
    )
    return {"private_test": real, "noise": noise}


def target_accuracy(model: nn.Module, split: Split, *, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` on ``split`` (the utility of a target), in [0, 1].

    Raises :class:`DataError` for an empty split, malformed images, or labels beyond the
    model's output width (a model trained for another protocol).

    Example::

        target_accuracy(target, protocol.private_test)   # 0.97
    """
    from invbench.training import evaluate_accuracy

    if len(split) == 0:
        raise DataError("target accuracy: the split has no images")
    return float(evaluate_accuracy(model, split.x, split.y, device=device))
