"""WGAN-GP training of an image prior (Gulrajani et al. 2017, https://arxiv.org/abs/1704.00028)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from invbench.data.protocol import check_images
from invbench.progress import progress_bar
from invbench.training._common import (
    _LOG_EVERY,
    _check_betas,
    _check_generated_shape,
    _check_non_negative,
    _check_positive,
    _fork_devices,
    _int_attribute,
)


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
    _check_betas(betas)
    latent_dim = _int_attribute(generator, "latent_dim")
    check_images(x, what=desc)
    dev = torch.device(device)
    generator.to(dev).train()
    discriminator.to(dev).train()
    x = x.to(dev)
    with torch.inference_mode():
        probe = generator(torch.zeros(2, latent_dim, device=dev))
    _check_generated_shape(probe, x, what=desc)

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
