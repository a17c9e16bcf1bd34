"""Classifier training (:func:`train_classifier`) and batched top-1 accuracy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from invbench.adversarial import AdversarialTraining
from invbench.data.protocol import check_images
from invbench.data.transforms import augment_batch
from invbench.errors import ConfigError
from invbench.progress import progress_bar
from invbench.training._common import (
    _LOG_EVERY,
    LossFn,
    _check_label_range,
    _check_labels,
    _check_non_negative,
    _check_positive,
    _cross_entropy,
    _fork_devices,
    _output_width,
    default_max_shift,
)

#: ``optimizer(params) -> torch.optim.Optimizer`` (params: parameters or parameter groups)
OptimizerFactory = Callable[[list[Any]], torch.optim.Optimizer]
#: ``batch_fn(xb, yb, generator) -> (xb, yb)``: rewrites a training batch
BatchFn = Callable[[Tensor, Tensor, torch.Generator], tuple[Tensor, Tensor]]
#: ``sampler(n, generator) -> [index tensors]``: the batches of one epoch
Sampler = Callable[[int, torch.Generator], list[Tensor]]


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    loss_fn: LossFn | None = None,
    epochs: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    augment: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    quiet: bool = True,
    desc: str = "train",
    adversarial: AdversarialTraining | None = None,
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]] | None = None,
    optimizer: OptimizerFactory | None = None,
    batch_fn: BatchFn | None = None,
    sampler: Sampler | None = None,
    on_epoch: Callable[[int], None] | None = None,
) -> nn.Module:
    """Train ``model`` in place with Adam on images ``x`` and labels ``y``.

    Each epoch visits every image once in an order drawn from a ``torch.Generator`` seeded
    with ``seed``; the same generator draws the augmentation shifts and the adversarial
    random starts, and any randomness inside ``loss_fn`` or the model (dropout,
    reparametrisation) uses torch's global RNG, seeded with ``seed`` for the duration of the
    call and restored afterwards. So the same seed and initial weights give the same trained
    weights on CPU.

    Adversarial training (``adversarial`` given): each (augmented) batch is replaced by
    untargeted adversarial examples of the current model on the true labels
    (:meth:`invbench.adversarial.AdversarialTraining.perturb`: PGD of Madry et al. 2018 or
    FGSM-RS of Wong et al. 2020, random start). They are made with the model in eval mode
    (BatchNorm uses its running statistics and does not update them on the attack's
    forward passes; a stochastic model still samples), then the model returns to train mode
    for the update on the adversarial batch only. A batch then costs ``steps`` extra
    forward-backward passes (PGD with 3 steps: measured ~3.7x the time of standard training).

    Args:
        model: a classifier returning logits (B, K); moved to ``device``.
        x: images (N, C, H, W) in [0, 1].
        y: integer labels (N,) in [0, K).
        loss_fn: ``loss_fn(model, xb, yb) -> scalar``; default cross-entropy on the logits.
        epochs: passes over the data (>= 1).
        batch_size: mini-batch size; a trailing batch of one image is skipped (BatchNorm).
        lr, weight_decay: Adam settings.
        augment: random shifts (:func:`invbench.data.transforms.augment_batch`) of up to
            1 px for images up to 16 px, 2 px at 28/32 px, 4 px at 64 px.
        seed: seeds shuffling, augmentation and the global RNG during training.
        device: where to train.
        quiet: hide the progress bar (when shown, the loss is updated every 25 steps).
        desc: progress bar label.
        adversarial: train on adversarial examples made with these settings (default: off);
            see :func:`invbench.adversarial.default_adversarial`.
        params: what the optimiser updates: parameters or parameter groups (dicts with
            ``"params"`` and per-group settings such as ``"lr"``); default all of
            ``model.parameters()``. TL-DMI passes only the unfrozen blocks.
        optimizer: ``optimizer(params) -> torch.optim.Optimizer`` (default: Adam with ``lr``
            and ``weight_decay``); DP-SGD passes a factory for its private optimiser.
        batch_fn: ``batch_fn(xb, yb, generator) -> (xb, yb)`` applied to every batch after
            augmentation (Trap-MID mixes in its trapdoor batches here; random erasing erases
            here); draw randomness from ``generator`` (seeded with ``seed``).
        sampler: ``sampler(n, generator) -> list of index tensors``, the batches of one
            epoch (default: a shuffled order cut into ``batch_size`` chunks). DP-SGD passes
            Poisson sampling. Batches of fewer than 2 images are skipped (BatchNorm).
        on_epoch: called with the epoch index (0-based) before each epoch (schedules, e.g.
            negative label smoothing's).

    Returns:
        ``model``, trained, in eval mode, on ``device``.

    Raises:
        DataError: empty or malformed data, mismatched lengths, labels out of the model's range.
        ConfigError: non-positive ``epochs``, ``batch_size`` or ``lr``; ``adversarial`` not an
            :class:`~invbench.adversarial.AdversarialTraining`.

    Example::

        model = make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=5)
        train_classifier(model, x, y, epochs=30, seed=0)
    """
    _check_positive("epochs", epochs, integer=True)
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("lr", lr, integer=False)
    _check_non_negative("weight_decay", weight_decay)
    if adversarial is not None and not isinstance(adversarial, AdversarialTraining):
        raise ConfigError(
            "adversarial must be an invbench.adversarial.AdversarialTraining or None, "
            f"got {type(adversarial).__name__}"
        )
    check_images(x, what=desc)
    y = _check_labels(x, y, what=desc)
    dev = torch.device(device)
    model.to(dev)
    x, y = x.to(dev), y.to(dev)
    _check_label_range(y, _output_width(model, x, what=desc), what=desc)
    loss_fn = loss_fn or _cross_entropy

    n = x.shape[0]
    shift = default_max_shift(x.shape[2]) if augment else 0
    steps_per_epoch = (n + batch_size - 1) // batch_size
    gen = torch.Generator().manual_seed(seed)
    trained = list(model.parameters() if params is None else params)
    if not trained:
        raise ConfigError(f"{desc}: params is empty; give the parameters to train")
    if optimizer is None:
        opt = torch.optim.Adam(trained, lr=lr, weight_decay=weight_decay)
    else:
        opt = optimizer(trained)
        if not isinstance(opt, torch.optim.Optimizer):
            raise ConfigError(
                f"{desc}: optimizer must return a torch.optim.Optimizer, got {type(opt).__name__}"
            )

    def epoch_batches() -> list[Tensor]:
        if sampler is not None:
            return [b.to(dev) for b in sampler(n, gen)]
        order = torch.randperm(n, generator=gen).to(dev)
        return list(order.split(batch_size))

    model.train()
    with (
        torch.random.fork_rng(devices=_fork_devices(dev)),
        progress_bar(epochs * steps_per_epoch, desc, quiet=quiet) as bar,
    ):
        torch.manual_seed(seed)
        running = torch.zeros((), device=dev)
        seen = 0
        for epoch in range(epochs):
            if on_epoch is not None:
                on_epoch(epoch)
            batches = epoch_batches()
            for step, idx in enumerate(batches):
                bar.advance()
                if idx.shape[0] < 2 <= n:
                    continue
                xb, yb = x[idx], y[idx]
                if shift:
                    xb = augment_batch(xb, max_shift=shift, generator=gen)
                if batch_fn is not None:
                    xb, yb = batch_fn(xb, yb, gen)
                if adversarial is not None:
                    model.eval()
                    xb = adversarial.perturb(model, xb, yb, generator=gen)
                    model.train()
                loss = loss_fn(model, xb, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if not quiet:
                    running += loss.detach()
                    seen += 1
                    if seen == _LOG_EVERY or (epoch == epochs - 1 and step == len(batches) - 1):
                        bar.update(epoch=epoch + 1, loss=float(running) / seen)
                        running.zero_()
                        seen = 0
    return model.eval()


def evaluate_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> float:
    """Top-1 accuracy in [0, 1] of ``model`` on images ``x`` (N, C, H, W) and labels ``y`` (N,).

    Runs in eval mode under ``torch.inference_mode()`` in batches of ``batch_size``, with one
    host sync at the end; the model's train/eval mode is restored afterwards.

    Raises:
        DataError: empty or malformed data, mismatched lengths, labels out of the model's range.
        ConfigError: non-positive ``batch_size``.

    Example::

        acc = evaluate_accuracy(model, split.x, split.y)
    """
    _check_positive("batch_size", batch_size, integer=True)
    check_images(x, what="evaluate_accuracy")
    y = _check_labels(x, y, what="evaluate_accuracy")
    dev = torch.device(device)
    model.to(dev)
    x, y = x.to(dev), y.to(dev)
    what = "evaluate_accuracy"
    _check_label_range(y, _output_width(model, x, what=what), what=what)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=dev)
    with torch.inference_mode():
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start : start + batch_size])
            correct += (logits.argmax(1) == y[start : start + batch_size]).sum()
    model.train(was_training)
    return int(correct) / x.shape[0]
