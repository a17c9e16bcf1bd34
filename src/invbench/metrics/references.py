"""The three references every evaluation is reported next to.

An attack score means little on its own: 60% is impressive if real private images score 70%
and noise 20%, and meaningless the other way round. Each reference is a set shaped like an
attack's output (labels repeated, images in [0, 1]) and is judged by the same metrics:

* ``"private_test"`` — held-out private images of the attacked classes: what *real success*
  looks like. Only the **reference half** of the held-out images is used; the other half, the
  **calibration half**, sets the ``success`` thresholds (:func:`split_holdout`), so this row is
  never judged by a threshold it set.
* ``"noise"`` — uniform-noise images labelled as those classes: what *no information* looks
  like (chance level, or an evaluator's bias).
* ``"adversarial"`` — natural images of the *public* classes pushed toward each attacked class
  on the *target* only (targeted L-inf PGD, Madry et al. 2018; EOT against a stochastic target):
  what *fooling without reconstructing* scores, i.e. features that transfer from the target
  to an evaluator. A rate metric that scores this reference well above ``noise`` is being
  fooled, and the run says so.

:func:`target_accuracy` is the utility side of the trade-off: the target's top-1 accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor, nn

from invbench.errors import ConfigError, DataError
from invbench.metrics.evaluator import derive_seed
from invbench.types import Reconstruction

if TYPE_CHECKING:
    from invbench.data.protocol import Protocol, Split

#: the names of the references, in report order
REFERENCES: tuple[str, ...] = ("private_test", "noise", "adversarial")


def _check_labels(labels: list[int] | Tensor, per_class: int, num_classes: int) -> list[int]:
    lab = [int(v) for v in torch.as_tensor(labels, dtype=torch.long).flatten().tolist()]
    if not lab:
        raise ConfigError("labels: give at least one private class label")
    if int(per_class) < 1:
        raise ConfigError(f"per_class must be >= 1, got {per_class}")
    bad = [v for v in lab if not 0 <= v < num_classes]
    if bad:
        raise ConfigError(
            f"labels {bad} out of range: the protocol has {num_classes} private classes"
        )
    return lab


def split_holdout(protocol: Protocol, *, seed: int) -> tuple[Tensor, Tensor]:
    """Split ``protocol.private_test`` per class into a calibration and a reference half.

    Returns two index tensors into ``private_test`` (calibration, reference). Each class is
    shuffled with a seed derived from ``seed``; the calibration half gets ``ceil(n/2)`` of its
    ``n`` images. A class with a single held-out image is refused (it cannot be both).

    Example::

        calib, ref = split_holdout(protocol, seed=0)
        protocol.private_test.y[calib].bincount()   # about half of each class
    """
    y = protocol.private_test.y.cpu().numpy()
    rng = np.random.default_rng(derive_seed(seed, "holdout"))
    calib: list[np.ndarray] = []
    ref: list[np.ndarray] = []
    for c in range(protocol.num_classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        if idx.size < 2:
            raise DataError(
                f"class {c} has {idx.size} held-out private image(s); calibration and the "
                "private_test reference need at least 2 (raise test_fraction or max_per_class)"
            )
        half = -(-idx.size // 2)
        calib.append(idx[:half])
        ref.append(idx[half:])
    return (
        torch.from_numpy(np.concatenate(calib)).long(),
        torch.from_numpy(np.concatenate(ref)).long(),
    )


def _repeat(lab: list[int], per_class: int) -> Tensor:
    return torch.tensor(lab, dtype=torch.long).repeat_interleave(per_class)


def private_test_reference(
    protocol: Protocol, labels: list[int] | Tensor, *, per_class: int, ref_index: Tensor, seed: int
) -> Reconstruction:
    """Held-out private images of ``labels`` from the reference half ``ref_index``.

    Up to ``per_class`` distinct images per class (fewer when the class has fewer: images are
    never repeated, so a small class gives a smaller, honest set), in label order.
    """
    lab = _check_labels(labels, per_class, protocol.num_classes)
    test = protocol.private_test
    y = test.y[ref_index].cpu().numpy()
    rng = np.random.default_rng(derive_seed(seed, "reference-test"))
    picks: list[np.ndarray] = []
    reps: list[np.ndarray] = []
    for c in lab:
        idx = ref_index.numpy()[y == c]
        if idx.size == 0:
            raise DataError(f"class {c} has no held-out private images to use as a reference")
        idx = rng.permutation(idx)[:per_class]
        picks.append(idx)
        reps.append(np.full(idx.size, c))
    order = torch.from_numpy(np.concatenate(picks)).long()
    rep = torch.from_numpy(np.concatenate(reps)).long()
    return Reconstruction(
        images=test.x[order].float().cpu().contiguous(), labels=rep, scores=torch.zeros(len(rep))
    )


def noise_reference(
    protocol: Protocol, labels: list[int] | Tensor, *, per_class: int, seed: int
) -> Reconstruction:
    """``per_class`` uniform-noise images in [0, 1] per label (no information)."""
    lab = _check_labels(labels, per_class, protocol.num_classes)
    rep = _repeat(lab, per_class)
    gen = torch.Generator().manual_seed(derive_seed(seed, "reference-noise"))
    images = torch.rand((rep.numel(), *protocol.image_shape), generator=gen)
    return Reconstruction(images=images, labels=rep, scores=torch.zeros(rep.numel()))


def adversarial_reference(
    protocol: Protocol,
    labels: list[int] | Tensor,
    target: nn.Module,
    *,
    per_class: int,
    seed: int,
    eps: float = 0.1,
    steps: int = 100,
    step_size: float = 0.01,
    eot: int = 8,
    device: torch.device | str = "cpu",
    batch_size: int = 500,
) -> Reconstruction:
    """Public images pushed toward each attacked class on ``target`` (fooling, not reconstructing).

    For each label, ``per_class`` images drawn (seeded, without replacement while the public
    split has enough) from the public classes are perturbed by targeted L-inf PGD on the
    target's logits — cross-entropy toward the label, ``steps`` steps of ``step_size`` within
    ``eps`` — so the target calls them that class while they still show a public class. Against
    a stochastic target (:func:`invbench.models.stochastic.is_stochastic`, e.g. MID) the gradient
    is averaged over ``eot`` draws of its noise (Expectation over Transformation, Athalye et al.,
    ICML 2018). ``scores`` hold the target's probability of the label after the attack.
    """
    from invbench.adversarial import pgd
    from invbench.models.stochastic import is_stochastic, reseed

    lab = _check_labels(labels, per_class, protocol.num_classes)
    public: Split = protocol.public
    rep = _repeat(lab, per_class)
    n = rep.numel()
    rng = np.random.default_rng(derive_seed(seed, "reference-adversarial"))
    rounds = -(-n // len(public))
    order = np.concatenate([rng.permutation(len(public)) for _ in range(rounds)])[:n]
    x0 = public.x[torch.from_numpy(order)].float()
    dev = torch.device(device)
    target = target.to(dev).eval()
    reseed(target, derive_seed(seed, "reference-adversarial-eot"))
    stochastic = is_stochastic(target)
    adv = pgd(
        target,
        x0.to(dev),
        rep.to(dev),
        eps=eps,
        steps=steps,
        step_size=step_size,
        targeted=True,
        eot=eot if stochastic else 1,
        batch_size=batch_size,
    )
    with torch.inference_mode():
        probs = torch.softmax(target(adv), dim=1)
        scores = probs.gather(1, rep.to(dev)[:, None])[:, 0]
    return Reconstruction(
        images=adv.detach().cpu().clamp(0, 1), labels=rep, scores=scores.float().cpu()
    )


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
