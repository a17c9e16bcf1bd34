"""LOKT's target-aware ACGAN (T-ACGAN): a conditional GAN whose class head learns the target.

Nguyen et al., "Label-Only Model Inversion Attacks via Knowledge Transfer", NeurIPS 2023,
https://arxiv.org/abs/2310.19342. The discriminator ``D`` has a real/fake head and a class
head. Each discriminator step scores real public images against generated ones ``G(z, y)``
(``y`` uniform) with the standard GAN loss and, once ``class_start`` generator steps have
passed, trains the class head to give the label **the target** answers for each generated
image (label-only queries, counted by the caller's ``label_fn``). Each generator step
fools the real/fake head and, from ``class_start`` on, makes the class head put ``G(z, y)``
in class ``y``. The generator thus learns class-conditional images the target labels as
their class, with no labels on the public data.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.progress import progress_bar
from invbench.training._common import _check_betas, _check_positive, _fork_devices


def train_tacgan(
    generator: nn.Module,
    discriminator: nn.Module,
    x: Tensor,
    *,
    label_fn: Callable[[Tensor], Tensor],
    num_classes: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.0, 0.9),
    n_dis: int = 1,
    class_start: int = 0,
    class_weight: float = 1.5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    quiet: bool = True,
    desc: str = "T-ACGAN",
) -> dict[str, float]:
    """Train ``generator(z, y)`` and the ACGAN ``discriminator(x) -> (score, logits)`` in place.

    Args:
        x: public images (N, C, H, W) in [0, 1] (their labels are never used).
        label_fn: the target's top-1 labels of a batch of images (a label-only query).
        num_classes: the target's classes (the generator's conditions).
        steps: generator steps; ``n_dis`` discriminator steps each.
        class_start: generator steps before the class losses start (reference: 1,000 of
            its run; the real/fake game settles first).
        class_weight: weight of both class losses (reference: 1.5).

    Returns the last losses (``d_loss``, ``g_loss``, ``agreement``: the share of generated
    images the target labelled as their condition in the last discriminator step).
    """
    for name, value in (("steps", steps), ("batch_size", batch_size), ("n_dis", n_dis)):
        _check_positive(name, value, integer=True)
    _check_betas(betas)
    dev = torch.device(device)
    generator.to(dev).train()
    discriminator.to(dev).train()
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    n = x.shape[0]
    latent = int(generator.latent_dim)  # type: ignore[arg-type]
    last = {"d_loss": float("nan"), "g_loss": float("nan"), "agreement": float("nan")}

    def sample(b: int) -> tuple[Tensor, Tensor]:
        z = torch.randn((b, latent), generator=gen, device=dev)
        y = torch.randint(0, num_classes, (b,), generator=gen, device=dev)
        return z, y

    with torch.random.fork_rng(devices=_fork_devices(dev)):
        torch.manual_seed(int(seed))
        with progress_bar(steps, desc, quiet=quiet) as bar:
            for step in range(steps):
                with_class = step >= class_start
                for _ in range(n_dis):
                    idx = torch.randint(0, n, (batch_size,), generator=gen, device=dev)
                    real = x[idx.cpu()].to(dev)
                    z, y = sample(batch_size)
                    with torch.no_grad():
                        fake = generator(z, y)
                    s_fake, c_fake = discriminator(fake)
                    s_real, _ = discriminator(real)
                    loss = (F.binary_cross_entropy_with_logits(s_fake, torch.zeros_like(s_fake))
                            + F.binary_cross_entropy_with_logits(s_real, torch.ones_like(s_real)))
                    if with_class:
                        answered = label_fn(fake).to(dev)
                        loss = loss + class_weight * F.cross_entropy(c_fake, answered)
                        last["agreement"] = float((answered == y).float().mean())
                    opt_d.zero_grad(set_to_none=True)
                    loss.backward()
                    opt_d.step()
                    last["d_loss"] = float(loss.detach())
                z, y = sample(batch_size)
                s_fake, c_fake = discriminator(generator(z, y))
                g_loss = F.binary_cross_entropy_with_logits(s_fake, torch.ones_like(s_fake))
                if with_class:
                    g_loss = g_loss + class_weight * F.cross_entropy(c_fake, y)
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                last["g_loss"] = float(g_loss.detach())
                bar.advance()
                if step % 50 == 0:
                    bar.update(**last)
    generator.eval()
    discriminator.eval()
    return last
