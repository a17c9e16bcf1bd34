"""KEDMI's semi-supervised GAN training (Chen et al., ICCV 2021, https://arxiv.org/abs/2010.04092)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.data.protocol import check_images
from invbench.errors import ConfigError, DataError
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


def _logsumexp_logit(class_logits: Tensor) -> Tensor:
    # the real-vs-fake logit of a (K+1)-way discriminator with the fake logit fixed at 0
    # (same as invbench.models.ssgan.real_logit; kept here so training imports no model)
    return torch.logsumexp(class_logits, dim=1)


def soft_cross_entropy(logits: Tensor, soft_labels: Tensor) -> Tensor:
    """Mean over the batch of ``-sum_k q_k log softmax(logits)_k``: ``(B, K), (B, K) -> ()``.

    KEDMI's supervised discriminator loss against the target's soft labels ``q`` (the
    reference's ``softXEnt``, which takes the target's logits and applies the softmax itself).

    Example::

        >>> soft_cross_entropy(torch.zeros(1, 4), torch.tensor([[0.5, 0.5, 0.0, 0.0]]))
        tensor(1.3863)
    """
    return -(soft_labels * F.log_softmax(logits, dim=1)).sum(1).mean()


def prediction_entropy(logits: Tensor) -> Tensor:
    """Mean over the batch of the entropy of ``softmax(logits)`` (nats): ``(B, K) -> ()``.

    Example::

        >>> prediction_entropy(torch.zeros(2, 4))  # uniform over 4 classes: log 4
        tensor(1.3863)
    """
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(1).mean()


def _check_soft_labels(soft: object, n: int, width: int | None, *, what: str) -> Tensor:
    if not isinstance(soft, Tensor):
        raise DataError(f"{what}: soft_labels must be a torch.Tensor, got {type(soft).__name__}")
    if soft.ndim != 2 or soft.shape[0] != n:
        raise DataError(
            f"{what}: soft_labels must have shape ({n}, classes) for {n} images, "
            f"got {tuple(soft.shape)}"
        )
    if width is not None and soft.shape[1] != width:
        raise DataError(
            f"{what}: soft_labels have {soft.shape[1]} classes, the discriminator's head "
            f"has {width}"
        )
    soft = soft.detach().float().clone()  # a plain tensor even from inference mode
    if not bool(torch.isfinite(soft).all()) or float(soft.min()) < 0:
        raise DataError(f"{what}: soft_labels must be finite probabilities >= 0")
    if float((soft.sum(1) - 1.0).abs().max()) > 1e-3:
        raise DataError(f"{what}: every row of soft_labels must sum to 1 (softmax outputs)")
    return soft


def train_kedmi_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    public_x: Tensor,
    soft_labels: Tensor,
    *,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-4,
    n_critic: int = 5,
    entropy_weight: float = 6.4e-3,
    betas: tuple[float, float] = (0.5, 0.999),
    seed: int = 0,
    device: torch.device | str = "cpu",
    quiet: bool = True,
    desc: str = "train KEDMI GAN",
) -> dict[str, float]:
    """Train KEDMI's semi-supervised GAN (Chen et al. 2021) in place on public images.

    Paper: S. Chen, M. Kahla, R. Jia, G.-J. Qi, "Knowledge-Enriched Distributional Model
    Inversion Attacks", ICCV 2021, https://arxiv.org/abs/2010.04092 (Sec. 3.1), following the
    reference code (``k+1_gan.py`` of github.com/SCccc21/Knowledge-Enriched-DMI).

    The discriminator ``D`` gives ``K`` class logits ``l`` (the fake class's logit fixed at
    0, so ``logsumexp(l)`` is its real-vs-fake logit). Per generator step, ``n_critic``
    discriminator steps minimise::

        soft_CE(l(x), q(x))                                        # supervised
        + 0.5 * (softplus(-lse(l(x))) + softplus(lse(l(G(z)))))    # real / fake

    (means over the batch) with ``q(x)`` the target's soft labels of the public image ``x``;
    then one generator step minimises feature matching plus an entropy term::

        mean_j |mean_i phi(G(z_i))_j - mean_i phi(x'_i)_j| + entropy_weight * H(softmax(l(G(z))))

    with ``phi`` the discriminator's conv features and ``x'`` a fresh public batch (lower
    entropy: generated images that ``D`` puts confidently into one of the target's classes).
    Adam with ``betas`` (0.5, 0.999) for both networks, as the reference. Real batches are
    drawn with replacement and latents from N(0, I), all from a generator seeded with
    ``seed`` on ``device`` (same seed and initial weights -> same weights on CPU).

    Differences from the reference, and why:

    * one real batch serves both the supervised and the unsupervised real loss (the
      reference draws a "labelled" and an "unlabelled" batch, both from the same public
      set here, so this is the same expectation at a third less compute);
    * the entropy term is the batch *mean* entropy; the reference sums it over its batch
      of 64 with weight 1e-4, which is this mean with weight 6.4e-3 (the default).

    Args:
        generator: maps (B, latent_dim) to images (B, C, H, W) in [0, 1]; needs ``latent_dim``.
        discriminator: a :class:`~invbench.models.ssgan.MinibatchDiscriminator` (or anything
            with ``features_and_logits(x) -> (features (B, F), logits (B, K))``).
        public_x: public images (N, C, H, W) in [0, 1].
        soft_labels: the target's softmax outputs on ``public_x``, (N, K), rows summing to 1.
        steps: generator steps (>= 1).
        batch_size, lr, n_critic, betas: the reference's 64, 2e-4, 5, (0.5, 0.999).
        entropy_weight: weight of the generated images' class entropy (>= 0).
        seed, device, quiet, desc: seeding, device, progress bar.

    Returns:
        Final losses as floats, all of the last step: ``d_loss``, ``supervised``,
        ``unsupervised``, ``g_loss``, ``feature_matching``, ``entropy`` and ``accuracy``
        (how often ``D``'s top class on a real batch is the soft labels' top class).
        Both networks are left in eval mode on ``device``.

    Raises:
        DataError: malformed images or soft labels, or images the generator does not make.
        ConfigError: non-positive ``steps``, ``batch_size``, ``lr``, ``n_critic``, negative
            ``entropy_weight``, bad ``betas``, a generator without ``latent_dim`` or a
            discriminator without ``features_and_logits``.

    Example::

        gen, disc = make_ssgan((1, 28, 28), num_classes=10)
        soft = torch.softmax(target(public_x), 1)
        losses = train_kedmi_gan(gen, disc, public_x, soft, steps=600, seed=0)
    """
    _check_positive("steps", steps, integer=True)
    _check_positive("batch_size", batch_size, integer=True)
    _check_positive("n_critic", n_critic, integer=True)
    _check_positive("lr", lr, integer=False)
    _check_non_negative("entropy_weight", entropy_weight)
    _check_betas(betas)
    latent_dim = _int_attribute(generator, "latent_dim")
    if not callable(getattr(discriminator, "features_and_logits", None)):
        raise ConfigError(
            "discriminator must have a features_and_logits(x) method (see make_ssgan)"
        )
    check_images(public_x, what=desc)
    soft = _check_soft_labels(
        soft_labels, public_x.shape[0], getattr(discriminator, "num_classes", None), what=desc
    )
    dev = torch.device(device)
    generator.to(dev).train()
    discriminator.to(dev).train()
    x = public_x.to(dev)
    soft = soft.to(dev)
    with torch.inference_mode():
        probe = generator.eval()(torch.zeros(2, latent_dim, device=dev))
    generator.train()
    _check_generated_shape(probe, x, what=desc)

    n = x.shape[0]
    gen = torch.Generator(device=dev).manual_seed(seed)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=tuple(betas))
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=tuple(betas))
    D = discriminator.features_and_logits
    zero = torch.zeros((), device=dev)
    d_loss = sup = unsup = g_loss = fm = ent = acc = zero
    with (
        torch.random.fork_rng(devices=_fork_devices(dev)),
        progress_bar(steps, desc, quiet=quiet) as bar,
    ):
        torch.manual_seed(seed)
        for step in range(steps):
            for p in discriminator.parameters():
                p.requires_grad_(True)
            for _ in range(n_critic):
                idx = torch.randint(n, (batch_size,), device=dev, generator=gen)
                real, q = x[idx], soft[idx]
                z = torch.randn(batch_size, latent_dim, device=dev, generator=gen)
                with torch.no_grad():
                    fake = generator(z)
                # real and fake in separate passes: minibatch discrimination compares a
                # sample with its own batch only
                _, l_real = D(real)
                _, l_fake = D(fake)
                sup = soft_cross_entropy(l_real, q)
                unsup = 0.5 * (
                    F.softplus(-_logsumexp_logit(l_real)).mean()
                    + F.softplus(_logsumexp_logit(l_fake)).mean()
                )
                d_loss = sup + unsup
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
            acc = (l_real.detach().argmax(1) == q.argmax(1)).float().mean()
            for p in discriminator.parameters():
                p.requires_grad_(False)
            idx = torch.randint(n, (batch_size,), device=dev, generator=gen)
            z = torch.randn(batch_size, latent_dim, device=dev, generator=gen)
            with torch.no_grad():
                f_real, _ = D(x[idx])
            f_fake, l_fake = D(generator(z))
            fm = (f_fake.mean(0) - f_real.mean(0)).abs().mean()
            ent = prediction_entropy(l_fake)
            g_loss = fm + entropy_weight * ent
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            bar.advance()
            if not quiet and (step % _LOG_EVERY == 0 or step == steps - 1):
                bar.update(d=float(d_loss.detach()), g=float(g_loss.detach()),
                           acc=float(acc))
    for p in discriminator.parameters():
        p.requires_grad_(True)
    generator.eval()
    discriminator.eval()
    return {
        "d_loss": float(d_loss.detach()),
        "supervised": float(sup.detach()),
        "unsupervised": float(unsup.detach()),
        "g_loss": float(g_loss.detach()),
        "feature_matching": float(fm.detach()),
        "entropy": float(ent.detach()),
        "accuracy": float(acc),
    }
