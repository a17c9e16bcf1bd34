"""Training loops shared by defenses, attacks and metrics.

- :func:`train_classifier`: mini-batch Adam on a classifier with any per-batch loss (a
  defense passes its own, e.g. cross-entropy plus an information bottleneck term),
  optionally on adversarial examples (PGD or FGSM-RS, :mod:`invbench.adversarial`).
- :func:`train_wgan_gp`: a WGAN-GP image prior (Gulrajani et al. 2017, "Improved Training
  of Wasserstein GANs", https://arxiv.org/abs/1704.00028) from public data.
- :func:`evaluate_accuracy`: batched top-1 accuracy.

All loops are seeded (same seed and same initial weights give the same trained weights on
CPU), device-agnostic, show a progress bar unless ``quiet`` and synchronise with the host
only every few steps, for that bar.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.adversarial import AdversarialTraining
from invbench.data.protocol import check_images
from invbench.data.transforms import augment_batch
from invbench.errors import ConfigError, DataError
from invbench.progress import progress_bar

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
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    with (
        torch.random.fork_rng(devices=_fork_devices(dev)),
        progress_bar(epochs * steps_per_epoch, desc, quiet=quiet) as bar,
    ):
        torch.manual_seed(seed)
        running = torch.zeros((), device=dev)
        seen = 0
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen).to(dev)
            for step in range(steps_per_epoch):
                idx = order[step * batch_size : (step + 1) * batch_size]
                bar.advance()
                if idx.shape[0] < 2 <= n:
                    continue
                xb, yb = x[idx], y[idx]
                if shift:
                    xb = augment_batch(xb, max_shift=shift, generator=gen)
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
                    if seen == _LOG_EVERY or (epoch == epochs - 1 and step == steps_per_epoch - 1):
                        bar.update(epoch=epoch + 1, loss=float(running) / seen)
                        running.zero_()
                        seen = 0
    return model.eval()


def _gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, gen: torch.Generator
) -> Tensor:
    eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=gen)
    mix = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def train_wgan_gp(
    generator: nn.Module,
    discriminator: nn.Module,
    x: Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    n_critic: int = 5,
    gp_weight: float = 10.0,
    betas: tuple[float, float] = (0.5, 0.9),
    seed: int = 0,
    device: torch.device | str = "cpu",
    quiet: bool = True,
    desc: str = "train GAN",
) -> dict[str, float]:
    """Train a WGAN-GP (Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028) in place.

    Per generator step, ``n_critic`` critic steps minimise
    ``D(G(z)) - D(x) + gp_weight * (||grad_m D(m)||_2 - 1)^2`` (means over the batch) with
    ``m`` a random per-sample interpolate of a real and a generated image; then one
    generator step minimises ``-D(G(z))``. Both use Adam with ``betas``. Real batches are
    drawn with replacement and latents from N(0, I), all from a generator seeded with
    ``seed`` on ``device`` (same seed and initial weights -> same weights on CPU).

    Args:
        generator: maps (B, latent_dim) to images (B, C, H, W) in [0, 1]; needs ``latent_dim``.
        discriminator: the critic, images -> (B,) scores; must not use BatchNorm.
        x: real images (N, C, H, W) in [0, 1] (public data).
        steps: generator steps (>= 1).
        batch_size, lr, n_critic, gp_weight, betas: as in the paper (its lr is 1e-4).
        seed, device, quiet, desc: seeding, device, progress bar.

    Returns:
        Final losses as floats: ``d_loss`` (critic loss incl. penalty), ``g_loss``,
        ``wasserstein`` (mean D(real) - mean D(fake), the critic's distance estimate) and
        ``gp`` (the unweighted gradient penalty), all of the last step.
        Both networks are left in eval mode on ``device``.

    Raises:
        DataError: empty or malformed images, or images whose shape the generator does
            not produce.
        ConfigError: non-positive ``steps``, ``batch_size``, ``lr``, ``n_critic``, negative
            ``gp_weight`` or a generator without ``latent_dim``.

    Example::

        gen, critic = make_gan((1, 8, 8))
        losses = train_wgan_gp(gen, critic, public_x, steps=1500, seed=0)
    """
    _check_positive("steps", steps, integer=True)
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("n_critic", n_critic, integer=True)
    _check_positive("lr", lr, integer=False)
    _check_non_negative("gp_weight", gp_weight)
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"betas must be two numbers in [0, 1), got {betas!r}")
    latent_dim = getattr(generator, "latent_dim", None)
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise ConfigError("generator must have an int attribute 'latent_dim' >= 1")
    check_images(x, what=desc)
    dev = torch.device(device)
    generator.to(dev).train()
    discriminator.to(dev).train()
    x = x.to(dev)
    with torch.inference_mode():
        probe = generator(torch.zeros(2, latent_dim, device=dev))
    if tuple(probe.shape[1:]) != tuple(x.shape[1:]):
        raise DataError(
            f"{desc}: images of shape {tuple(x.shape[1:])} but the generator makes "
            f"{tuple(probe.shape[1:])}"
        )

    n = x.shape[0]
    gen = torch.Generator(device=dev).manual_seed(seed)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=tuple(betas))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=tuple(betas))
    zero = torch.zeros((), device=dev)
    d_loss, g_loss, dist, gp = zero, zero, zero, zero
    with (
        torch.random.fork_rng(devices=_fork_devices(dev)),
        progress_bar(steps, desc, quiet=quiet) as bar,
    ):
        torch.manual_seed(seed)
        for step in range(steps):
            for p in discriminator.parameters():
                p.requires_grad_(True)
            for _ in range(n_critic):
                real = x[torch.randint(n, (batch_size,), device=dev, generator=gen)]
                z = torch.randn(batch_size, latent_dim, device=dev, generator=gen)
                with torch.no_grad():
                    fake = generator(z)
                # one critic pass over real and fake (the critic is per-sample: no BatchNorm)
                d_real, d_fake = discriminator(torch.cat([real, fake])).split(batch_size)
                d_real, d_fake = d_real.mean(), d_fake.mean()
                gp = _gradient_penalty(discriminator, real, fake, gen)
                d_loss = d_fake - d_real + gp_weight * gp
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            dist = (d_real - d_fake).detach()
            for p in discriminator.parameters():
                p.requires_grad_(False)
            z = torch.randn(batch_size, latent_dim, device=dev, generator=gen)
            g_loss = -discriminator(generator(z)).mean()
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            bar.advance()
            if not quiet and (step % _LOG_EVERY == 0 or step == steps - 1):
                bar.update(d=float(d_loss.detach()), g=float(g_loss.detach()), w=float(dist))
    for p in discriminator.parameters():
        p.requires_grad_(True)
    generator.eval()
    discriminator.eval()
    return {
        "d_loss": float(d_loss.detach()),
        "g_loss": float(g_loss.detach()),
        "wasserstein": float(dist),
        "gp": float(gp.detach()),
    }


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
