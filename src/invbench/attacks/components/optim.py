"""Optimisers for latents and images."""

from __future__ import annotations

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
