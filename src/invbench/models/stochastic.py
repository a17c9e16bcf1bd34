"""Seeding models whose predictions are random (e.g. MID's sampled information bottleneck).

A module whose eval-time forward draws random numbers declares it with a true ``stochastic``
attribute and a ``reseed(seed)`` method that restarts its own :class:`torch.Generator`, so
its predictions never touch torch's global RNG. The runner calls :func:`reseed` on a target
before each attack and each evaluation, so every attack is deterministic against such a
target too: the same seed gives the same predictions, query for query.

Example::

    from invbench.models.stochastic import is_stochastic, reseed

    model = MID(beta=0.01, samples=4).train(protocol, seed=0).eval()
    if is_stochastic(model):
        reseed(model, 0)
    a = model(x)
    reseed(model, 0)
    torch.equal(a, model(x))  # True
"""

from __future__ import annotations

from torch import nn


def reseed(model: nn.Module, seed: int) -> None:
    """Call ``reseed(seed)`` on every submodule of ``model`` (itself included) that has one.

    Modules without random predictions are left alone, so this is safe on any model.
    """
    for module in model.modules():
        method = getattr(module, "reseed", None)
        if callable(method):
            method(int(seed))


def is_stochastic(model: nn.Module) -> bool:
    """True if any submodule of ``model`` (itself included) has a true ``stochastic`` attribute.

    Such a model's eval-time predictions are random draws (seeded through :func:`reseed`):
    attacks and the adversarial reference must average over them (EOT) rather than trust a
    single forward pass.
    """
    return any(bool(getattr(module, "stochastic", False)) for module in model.modules())
