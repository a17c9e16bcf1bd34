"""PLG-MI's pseudo label-guided conditional GAN (Yuan et al., AAAI 2023).

Paper: X. Yuan, K. Chen, J. Zhang, W. Zhang, N. Yu, Y. Zhang, "Pseudo Label-Guided Model
Inversion Attack via Conditional Generative Adversarial Network", AAAI 2023,
https://arxiv.org/abs/2302.09814 (reference code: github.com/LetheSec/PLG-MI-Attack,
``train_cgan.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from invbench.data.protocol import check_images
from invbench.errors import DataError
from invbench.progress import progress_bar
from invbench.training._common import (
    _LOG_EVERY,
    _check_betas,
    _check_generated_shape,
    _check_labels,
    _check_non_negative,
    _check_positive,
    _fork_devices,
    _int_attribute,
)

#: images (B, C, H, W) -> logits (B, K); e.g. a white-box access's ``logits`` (counts queries)
LogitsFn = Callable[[Tensor], Tensor]
#: logits (B, K), labels (B,) -> per-sample loss (B,); e.g. PLG-MI's max-margin loss
IdentityFn = Callable[[Tensor, Tensor], Tensor]


def hinge_d_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """Hinge loss of the discriminator: ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``.

    (Lim & Ye 2017; Miyato et al. 2018.) Zero once real scores are >= 1 and fake ones <= -1.

    Example::

        >>> hinge_d_loss(torch.tensor([2.0, 0.0]), torch.tensor([-3.0, 1.0]))
        tensor(1.5000)
    """
    return torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()


def hinge_g_loss(d_fake: Tensor) -> Tensor:
    """Hinge loss of the generator: ``-mean(D(G(z, y), y))``."""
    return -d_fake.mean()


def train_plgmi_cgan(
    generator: nn.Module,
    discriminator: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    classifier: LogitsFn,
    identity_loss: IdentityFn,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.0, 0.9),
    n_dis: int = 5,
    alpha: float = 0.2,
    augment: Callable[..., Tensor] | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    quiet: bool = True,
    desc: str = "train cGAN",
) -> dict[str, float]:
    """Train PLG-MI's conditional GAN in place on pseudo-labelled public images.

    Every step first updates the generator on

    ``-mean D(G(z, y'), y') + alpha * mean identity_loss(classifier(aug(G(z, y'))), y')``

    (hinge generator loss plus the inversion loss that pushes ``G(., y')`` towards what the
    target calls class ``y'``), then ``n_dis`` times the discriminator on the hinge loss
    :func:`hinge_d_loss` of a real batch ``(x, y)`` and a generated one (``G`` not updated).
    Fake labels ``y'`` are uniform over the generator's classes, real batches are drawn
    with replacement, latents from N(0, I); both optimisers are Adam with ``betas``. This is
    the order and the loss of the reference's ``train_cgan.py``.

    ``classifier`` is the target's logits function (PLG-MI passes ``access.logits``, so the
    ``batch_size`` images of every generator step are counted as queries) and must be
    differentiable in its input; only the generator's parameters receive gradients (the
    target's and the discriminator's ``.grad`` are left untouched in the generator step).
    ``identity_loss`` maps ``(logits, labels)`` to a per-sample loss ``(B,)`` (PLG-MI: the
    max-margin loss ``max_{k != y} f_k - f_y``). ``augment``, if given, is called as
    ``augment(images, generator=gen)`` on the generated images before the classifier sees
    them (the reference: random resized crops, colour jitter, flips, small rotations).

    Everything random is drawn from a generator seeded with ``seed`` on ``device`` (same
    seed and initial weights -> same weights on CPU).

    Args:
        generator: ``(z (B, latent_dim), y (B,)) -> images (B, C, H, W)`` in [0, 1]; needs
            int attributes ``latent_dim`` and ``num_classes``.
        discriminator: ``(images, y) -> (B,)`` raw scores (e.g. a projection discriminator).
        x: pseudo-labelled real images (N, C, H, W) in [0, 1]; y: their labels (N,) in
            ``[0, num_classes)``.
        classifier, identity_loss, augment: as above.
        steps: generator steps (>= 1; the reference: 30000 on 64 px faces).
        batch_size, lr, betas, n_dis: the reference's 64, 2e-4, (0.0, 0.9) and 5.
        alpha: weight of the inversion loss (the reference: 0.2); 0 gives a plain cGAN
            and the classifier is not called.
        seed, device, quiet, desc: seeding, device, progress bar.

    Returns:
        Losses of the last step as floats: ``d_loss`` (hinge), ``g_loss`` (hinge part of the
        generator loss), ``inv_loss`` (mean identity loss) and ``target_acc`` (fraction of the
        last generated batch the classifier put in its condition class; 0 when ``alpha`` is
        0). Both networks are left in eval mode on ``device``.

    Raises:
        DataError: empty or malformed images or labels, labels outside the generator's
            classes, or images whose shape the generator does not produce.
        ConfigError: non-positive ``steps``, ``batch_size``, ``lr``, ``n_dis``, negative
            ``alpha``, bad ``betas`` or a generator without ``latent_dim``/``num_classes``.

    Example::

        gen, disc = make_cgan((1, 28, 28), num_classes=5)
        losses = train_plgmi_cgan(gen, disc, x_sel, y_sel, classifier=access.logits,
                                  identity_loss=MaxMarginIdentity(), steps=500)
    """
    _check_positive("steps", steps, integer=True)
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("n_dis", n_dis, integer=True)
    _check_positive("lr", lr, integer=False)
    _check_non_negative("alpha", alpha)
    _check_betas(betas)
    latent_dim = _int_attribute(generator, "latent_dim")
    num_classes = _int_attribute(generator, "num_classes")
    check_images(x, what=desc)
    y = _check_labels(x, y, what=desc)
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(
            f"{desc}: labels must lie in [0, {num_classes - 1}] (the generator's classes), "
            f"got [{lo}, {hi}]"
        )
    dev = torch.device(device)
    generator.to(dev).train()
    discriminator.to(dev).train()
    x, y = x.to(dev), y.to(dev)
    with torch.inference_mode(), torch.random.fork_rng(devices=_fork_devices(dev)):
        generator.eval()
        probe = generator(torch.zeros(1, latent_dim, device=dev),
                          torch.zeros(1, dtype=torch.long, device=dev))
        generator.train()
    _check_generated_shape(probe, x, what=desc)

    n = x.shape[0]
    gen = torch.Generator(device=dev).manual_seed(seed)
    g_params = [p for p in generator.parameters() if p.requires_grad]
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=tuple(betas))
    opt_g = torch.optim.Adam(g_params, lr=lr, betas=tuple(betas))

    def sample_fake() -> tuple[Tensor, Tensor]:
        z = torch.randn(batch_size, latent_dim, device=dev, generator=gen)
        labels = torch.randint(num_classes, (batch_size,), device=dev, generator=gen)
        return generator(z, labels), labels

    zero = torch.zeros((), device=dev)
    d_loss, g_loss, inv_loss, acc = zero, zero, zero, zero
    with (
        torch.random.fork_rng(devices=_fork_devices(dev)),
        progress_bar(steps, desc, quiet=quiet) as bar,
    ):
        torch.manual_seed(seed)
        for step in range(steps):
            # generator: hinge loss + alpha * inversion loss on the target
            fake, fake_y = sample_fake()
            g_loss = hinge_g_loss(discriminator(fake, fake_y))
            total = g_loss
            if alpha > 0:
                seen = fake if augment is None else augment(fake, generator=gen)
                logits = classifier(seen)
                inv_loss = identity_loss(logits, fake_y).mean()
                total = total + alpha * inv_loss
                acc = (logits.detach().argmax(1) == fake_y).float().mean()
            grads = torch.autograd.grad(total, g_params)
            for p, g in zip(g_params, grads, strict=True):
                p.grad = g
            opt_g.step()
            # discriminator: hinge loss on one pass over real and fake
            for _ in range(n_dis):
                idx = torch.randint(n, (batch_size,), device=dev, generator=gen)
                with torch.no_grad():
                    fake, fake_y = sample_fake()
                scores = discriminator(torch.cat([x[idx], fake]), torch.cat([y[idx], fake_y]))
                d_real, d_fake = scores.split(batch_size)
                d_loss = hinge_d_loss(d_real, d_fake)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            bar.advance()
            if not quiet and (step % _LOG_EVERY == 0 or step == steps - 1):
                bar.update(d=float(d_loss.detach()), g=float(g_loss.detach()),
                           inv=float(inv_loss.detach()), acc=float(acc))
    generator.eval()
    discriminator.eval()
    return {
        "d_loss": float(d_loss.detach()),
        "g_loss": float(g_loss.detach()),
        "inv_loss": float(inv_loss.detach()),
        "target_acc": float(acc),
    }
