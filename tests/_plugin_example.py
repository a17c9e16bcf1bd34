"""A stand-in third-party plugin for tests/test_registry.py (not a test module itself).

Importing it registers the attack ``example-plugin``; calling :func:`register_more`
registers ``example-plugin-callable`` (the callable form of an entry point).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from invbench.access import Access
from invbench.attacks.base import Attack
from invbench.params import Params as _Params
from invbench.registry import ATTACKS, register_attack
from invbench.types import Reconstruction

#: not a plugin entry: an entry point naming it is refused (neither a module nor callable)
VERSION = "0.1"


@register_attack("example-plugin")
class ExamplePluginAttack(Attack):
    """A uniform-noise 'attack' from a plugin (2024; black-box): returns seeded noise.

    Example::

        ExamplePluginAttack(scale=0.5).invert(access, [0], seed=0)
    """

    access = "black-box"

    class Params(_Params):
        """The example plugin's one parameter."""
        scale: float = Field(1.0, gt=0, le=1, description="noise in [0, scale]")

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        shape = (labels.shape[0], *access.image_shape)
        images = torch.rand(shape, generator=generator, device=access.device) * self.params.scale
        return Reconstruction(images=images, labels=labels, scores=torch.zeros(labels.shape[0]))


def register_more() -> None:
    """The callable form of an entry point: registers one more attack when called."""
    ATTACKS.register("example-plugin-callable")(type(
        "ExampleCallableAttack", (ExamplePluginAttack,), {"__doc__": ExamplePluginAttack.__doc__}
    ))


def register_clash() -> None:
    """A broken plugin: registers a name a built-in already uses."""
    ATTACKS.register("mi-face")(ExamplePluginAttack)
