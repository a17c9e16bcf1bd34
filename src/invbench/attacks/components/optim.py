"""Optimisers for latents and images."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
from torch import Tensor

from invbench.errors import ConfigError


class NesterovSGD:
    """SGD with Nesterov momentum on one tensor, updated in place from a given gradient.

    The update of GMI's reference code (Sutskever et al. 2013 form)::

        v_new = momentum * v - lr * g
        x    += -momentum * v + (1 + momentum) * v_new     # == v_new + momentum * (v_new - v)

    which equals ``torch.optim.SGD(nesterov=True)``. It is a few fused tensor ops with no
    parameter groups, so it suits gradients taken with :func:`torch.autograd.grad` inside
    tight loops (no host synchronisation).

    Arguments:
        lr: step size, > 0.
        momentum: in [0, 1); 0 gives plain gradient descent.

    Example::

        >>> x = torch.ones(3)
        >>> opt = NesterovSGD(lr=0.1, momentum=0.9)
        >>> _ = opt.step_(x, torch.ones(3))
        >>> x
        tensor([0.8100, 0.8100, 0.8100])
    """

    def __init__(self, *, lr: float, momentum: float = 0.9) -> None:
        if not lr > 0:
            raise ConfigError(f"NesterovSGD: lr must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ConfigError(f"NesterovSGD: momentum must be in [0, 1), got {momentum}")
        self.lr = float(lr)
        self.momentum = float(momentum)
        self._v: Tensor | None = None

    def step_(self, x: Tensor, grad: Tensor) -> Tensor:
        """Update ``x`` in place with ``grad`` (same shape); returns ``x``."""
        with torch.no_grad():
            if self.momentum == 0.0:
                return x.sub_(grad, alpha=self.lr)
            if self._v is None:
                self._v = torch.zeros_like(x)
            v = self._v
            v.mul_(self.momentum).sub_(grad, alpha=self.lr)
            x.add_(v, alpha=self.momentum).sub_(grad, alpha=self.lr)
            return x


#: names :func:`make_optimizer` accepts
OPTIMIZERS: tuple[str, ...] = ("sgd", "nesterov", "adam")


def make_optimizer(
    name: Literal["sgd", "nesterov", "adam"],
    params: Iterable[Tensor],
    *,
    lr: float,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The torch optimiser called ``name`` over ``params`` (latents or images to invert).

    ``"sgd"`` is :class:`torch.optim.SGD` with ``momentum``, ``"nesterov"`` the same with
    ``nesterov=True`` (GMI, KEDMI), ``"adam"`` is :class:`torch.optim.Adam` with ``betas``
    (DeepInversion, PPA, PLG-MI). ``momentum`` is ignored by Adam and ``betas`` by SGD.

    Raises:
        ConfigError: an unknown ``name`` (the message lists :data:`OPTIMIZERS`), ``lr <= 0``,
            ``momentum`` outside [0, 1), betas outside [0, 1) or ``weight_decay < 0``.

    Example::

        >>> x = torch.zeros(3, requires_grad=True)
        >>> opt = make_optimizer("adam", [x], lr=0.1)
        >>> type(opt).__name__
        'Adam'
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer '{name}'; choose one of: {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise ConfigError(f"optimizer lr must be > 0, got {lr}")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"optimizer momentum must be in [0, 1), got {momentum}")
    if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
        raise ConfigError(f"optimizer betas must be two numbers in [0, 1), got {betas}")
    if not weight_decay >= 0:
        raise ConfigError(f"optimizer weight_decay must be >= 0, got {weight_decay}")
    params = list(params)
    if name == "adam":
        return torch.optim.Adam(
            params, lr=lr, betas=(float(betas[0]), float(betas[1])), weight_decay=weight_decay
        )
    nesterov = name == "nesterov"
    if nesterov and momentum == 0.0:
        raise ConfigError("optimizer 'nesterov' needs momentum > 0; use 'sgd' for plain SGD")
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )
