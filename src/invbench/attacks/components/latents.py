"""Latent samplers and learnable latent distributions: where a GAN-based attack searches."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from invbench.errors import ConfigError


class GaussianLatent:
    """Standard normal latent vectors ``z ~ N(0, I)``, optionally clipped to ``[-clip, clip]``.

    GMI (Zhang et al., CVPR 2020) samples its starting latents from the generator's training
    distribution and clips them to ``[-1, 1]`` after every update; :meth:`project_` is that
    clipping step.

    Arguments:
        dim: latent dimension (the generator's ``latent_dim``), >= 1.
        clip: half-width of the box latents are kept in; ``None`` leaves them unbounded.

    Shape:
        :meth:`sample` returns ``(n, dim)`` float32 on ``device``.

    Example::

        >>> sampler = GaussianLatent(100, clip=1.0)
        >>> z = sampler.sample(4, generator=torch.Generator().manual_seed(0))
        >>> bool(z.abs().max() <= 1.0)
        True
    """

    def __init__(self, dim: int, *, clip: float | None = None) -> None:
        if int(dim) < 1:
            raise ConfigError(f"latent dim must be >= 1, got {dim}")
        if clip is not None and not clip > 0:
            raise ConfigError(f"latent clip must be > 0 (or None for no clipping), got {clip}")
        self.dim = int(dim)
        self.clip = None if clip is None else float(clip)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` latents with ``generator`` (which must live on ``device``)."""
        dev = torch.device(device) if device is not None else generator.device
        z = torch.randn(int(n), self.dim, generator=generator, device=dev)
        return self.project_(z)

    def project_(self, z: Tensor) -> Tensor:
        """Clip ``z`` in place to the sampler's box (no-op without ``clip``); returns ``z``."""
        if self.clip is not None:
            with torch.no_grad():
                z.clamp_(-self.clip, self.clip)
        return z

    def __repr__(self) -> str:
        return f"GaussianLatent(dim={self.dim}, clip={self.clip})"


class LatentGaussian(nn.Module):
    """A learnable diagonal Gaussian ``N(mu_i, diag(sigma_i^2))`` per inverted image.

    KEDMI (Chen et al., "Knowledge-Enriched Distributional Model Inversion Attacks",
    ICCV 2021, https://arxiv.org/abs/2010.04092) searches a *distribution* of latents per
    label rather than one latent. :meth:`sample` is reparameterised,
    ``z = mu + exp(log_sigma) * eps`` with ``eps ~ N(0, I)`` drawn from the given generator,
    so gradients of any loss on the samples reach ``mu`` and ``log_sigma``.

    Arguments:
        num: how many distributions (one per requested image or label), >= 1.
        dim: latent dimension, >= 1.
        generator: draws the initial means when ``mu_std > 0`` (also fixes the device when
            ``device`` is None).
        device: where the parameters live.
        init_std: initial ``sigma`` of every coordinate, > 0 (KEDMI's reference code starts
            at ``exp(0.5) ~ 1.65`` via ``log_var = 1``).
        mu_std: initial means are ``mu_std * N(0, I)``; 0 (the default, KEDMI's) starts every
            mean at the origin.

    Shape:
        ``mu``, ``log_sigma``: ``(num, dim)``; :meth:`sample` returns ``(num, n, dim)``;
        :meth:`mean` returns ``(num, dim)``.

    Example::

        >>> dist = LatentGaussian(3, 8, generator=torch.Generator().manual_seed(0))
        >>> dist.sample(5, generator=torch.Generator().manual_seed(1)).shape
        torch.Size([3, 5, 8])
    """

    def __init__(
        self,
        num: int,
        dim: int,
        *,
        generator: torch.Generator,
        device: torch.device | str | None = None,
        init_std: float = 1.0,
        mu_std: float = 0.0,
    ) -> None:
        super().__init__()
        if int(num) < 1 or int(dim) < 1:
            raise ConfigError(f"LatentGaussian: num and dim must be >= 1, got {num} and {dim}")
        if not init_std > 0:
            raise ConfigError(f"LatentGaussian: init_std must be > 0, got {init_std}")
        if not mu_std >= 0:
            raise ConfigError(f"LatentGaussian: mu_std must be >= 0, got {mu_std}")
        dev = torch.device(device) if device is not None else generator.device
        if mu_std > 0:
            mu = torch.randn(int(num), int(dim), generator=generator, device=generator.device)
            mu = (mu * float(mu_std)).to(dev)
        else:
            mu = torch.zeros(int(num), int(dim), device=dev)
        self.num, self.dim = int(num), int(dim)
        self.mu = nn.Parameter(mu)
        self.log_sigma = nn.Parameter(torch.full_like(mu, math.log(float(init_std))))

    def sample(self, n: int, *, generator: torch.Generator) -> Tensor:
        """``n`` reparameterised draws per distribution: ``(num, n, dim)``, differentiable."""
        if int(n) < 1:
            raise ConfigError(f"LatentGaussian.sample: n must be >= 1, got {n}")
        eps = torch.randn(
            self.num, int(n), self.dim, generator=generator, device=generator.device
        ).to(self.mu.device)
        return self.mu.unsqueeze(1) + self.log_sigma.exp().unsqueeze(1) * eps

    def mean(self) -> Tensor:
        """The means ``(num, dim)`` (KEDMI's final images are generated from them)."""
        return self.mu

    def forward(self, n: int, *, generator: torch.Generator) -> Tensor:
        """Same as :meth:`sample`."""
        return self.sample(n, generator=generator)

    def extra_repr(self) -> str:
        return f"num={self.num}, dim={self.dim}"
