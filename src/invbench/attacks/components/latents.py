"""Latent samplers: where a generator-based attack starts its search."""

from __future__ import annotations

import torch
from torch import Tensor

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
