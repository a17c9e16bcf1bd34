"""Knowledge distillation of a student classifier from a teacher's soft labels.

Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015,
https://arxiv.org/abs/1503.02531. Attacks use it to build surrogates of a target from its
outputs on public images (LOMMA's model augmentation, Nguyen et al., CVPR 2023,
https://arxiv.org/abs/2304.01669), so only the target's probability vectors are needed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.data.protocol import check_images
from invbench.errors import ConfigError, DataError
from invbench.progress import progress_bar
from invbench.training._common import (
    _LOG_EVERY,
    _check_non_negative,
    _check_positive,
    _fork_devices,
    _output_width,
)

#: a teacher: images (B, C, H, W) in [0, 1] -> probability vectors (B, K)
TeacherFn = Callable[[Tensor], Tensor]


def _tempered(probs: Tensor, temperature: float) -> Tensor:
    """``softmax(log(p) / T)``, i.e. ``p^(1/T)`` renormalised; zeros stay zeros."""
    if temperature == 1.0:
        return probs / probs.sum(1, keepdim=True)
    q = probs.clamp_min(0).pow(1.0 / temperature)
    return q / q.sum(1, keepdim=True)


def _check_probs(p: Tensor, *, rows: int, width: int, what: str) -> Tensor:
    if not isinstance(p, Tensor) or p.ndim != 2:
        got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
        raise DataError(f"{what}: teacher probabilities must be a (N, K) tensor, got {got}")
    if p.shape != (rows, width):
        raise DataError(
            f"{what}: teacher probabilities must have shape ({rows}, {width}) (one row per "
            f"image, one column per student output), got {tuple(p.shape)}"
        )
    p = p.detach().float()
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise DataError(f"{what}: teacher probabilities must be finite and >= 0")
    if bool((p.sum(1) <= 0).any()):
        raise DataError(f"{what}: every teacher probability row must have a positive sum")
    return p


def distill_classifier(
    student: nn.Module,
    x: Tensor,
    teacher: Tensor | TeacherFn,
    *,
    epochs: int,
    batch_size: int = 64,
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    temperature: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    quiet: bool = True,
    desc: str = "distill",
) -> dict[str, float]:
    """Train ``student`` in place to match a teacher's soft labels on images ``x``.

    Each step minimises Hinton et al.'s distillation loss on a mini-batch,
    ``T^2 * KL(softmax(t / T) || softmax(s / T))`` averaged over the batch, with ``t`` the
    teacher's and ``s`` the student's logits (the teacher's tempered distribution is
    computed from its probabilities as ``p^(1/T)`` renormalised, which equals
    ``softmax(t / T)``; rows that are not normalised, e.g. rounded outputs, are
    renormalised). SGD with momentum and weight decay, as LOMMA's reference distillation.
    Each epoch visits every image once in an order drawn from a ``torch.Generator`` seeded
    with ``seed``; torch's global RNG is seeded with ``seed`` for the call and restored
    afterwards, so the same seed and initial weights give the same weights on CPU.

    Args:
        student: a classifier returning logits (B, K); moved to ``device``.
        x: images (N, C, H, W) in [0, 1] (public images, optionally prior samples).
        teacher: either the teacher's probability vectors (N, K) for ``x`` (queried once,
            e.g. through ``access.predict_proba``), or a callable mapping a batch of images
            to probabilities (B, K), called under ``torch.no_grad`` on every batch (a
            teacher that is queried live, as the reference code does).
        epochs: passes over ``x`` (>= 1).
        batch_size: mini-batch size; a trailing batch of one image is skipped (BatchNorm).
        lr, momentum, weight_decay: SGD settings (LOMMA's code: 0.01, 0.9, 1e-4).
        temperature: softmax temperature ``T`` > 0 (LOMMA's code: 1).
        seed, device, quiet, desc: seeding, device, progress bar (loss every 25 steps).

    Returns:
        ``{"loss": mean distillation loss of the last epoch}``. The student is left in eval
        mode on ``device``, with its gradients cleared.

    Raises:
        DataError: empty or malformed images, teacher probabilities of the wrong shape,
            negative or non-finite, or a width different from the student's outputs.
        ConfigError: non-positive ``epochs``, ``batch_size``, ``lr`` or ``temperature``,
            negative ``weight_decay``, ``momentum`` outside [0, 1), or a teacher that is
            neither a tensor nor callable.

    Shape:
        ``x`` (N, C, H, W) in [0, 1]; ``teacher`` (N, K) or (B, C, H, W) -> (B, K).

    Example::

        student = make_classifier("mobile", image_shape=(1, 8, 8), num_classes=5)
        probs = access.predict_proba(public.x)          # N queries
        distill_classifier(student, public.x, probs, epochs=40, seed=0)
    """
    _check_positive("epochs", epochs, integer=True)
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("lr", lr, integer=False)
    _check_positive("temperature", temperature, integer=False)
    _check_non_negative("weight_decay", weight_decay)
    if isinstance(momentum, bool) or not isinstance(momentum, int | float) or not 0 <= momentum < 1:
        raise ConfigError(f"momentum must be a number in [0, 1), got {momentum!r}")
    if not isinstance(teacher, Tensor) and not callable(teacher):
        raise ConfigError(
            "teacher must be a (N, K) tensor of probabilities or a callable images -> "
            f"probabilities, got {type(teacher).__name__}"
        )
    check_images(x, what=desc)
    dev = torch.device(device)
    student.to(dev)
    x = x.to(dev)
    width = _output_width(student, x, what=desc)
    n = x.shape[0]
    targets: Tensor | None = None
    if isinstance(teacher, Tensor):
        targets = _tempered(_check_probs(teacher, rows=n, width=width, what=desc), temperature)
        targets = targets.to(dev)

    temp = float(temperature)
    steps_per_epoch = (n + batch_size - 1) // batch_size
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(
        student.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    student.train()
    running = torch.zeros((), device=dev)
    seen = 0
    with (
        torch.random.fork_rng(devices=_fork_devices(dev)),
        progress_bar(epochs * steps_per_epoch, desc, quiet=quiet) as bar,
    ):
        torch.manual_seed(seed)
        for epoch in range(epochs):
            running.zero_()
            seen = 0
            order = torch.randperm(n, generator=gen).to(dev)
            for step in range(steps_per_epoch):
                idx = order[step * batch_size : (step + 1) * batch_size]
                bar.advance()
                if idx.shape[0] < 2 <= n:
                    continue
                xb = x[idx]
                if targets is not None:
                    qb = targets[idx]
                else:
                    with torch.no_grad():
                        out = teacher(xb)  # type: ignore[operator]
                    qb = _tempered(
                        _check_probs(out, rows=xb.shape[0], width=width, what=desc), temp
                    ).to(dev)
                log_p = F.log_softmax(student(xb) / temp, dim=1)
                loss = F.kl_div(log_p, qb, reduction="batchmean") * (temp * temp)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                running += loss.detach()
                seen += 1
                if not quiet and (seen % _LOG_EVERY == 0 or step == steps_per_epoch - 1):
                    bar.update(epoch=epoch + 1, kd=float(running) / seen)
    student.zero_grad(set_to_none=True)  # no stale gradients on a model that is then frozen
    student.eval()
    return {"loss": float(running) / max(seen, 1)}
