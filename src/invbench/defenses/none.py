"""No defense: plain cross-entropy training of the target (the undefended baseline)."""

from __future__ import annotations

from invbench.defenses.base import Defense
from invbench.registry import register_defense


@register_defense("none")
class NoDefense(Defense):
    """No defense: the target is trained with plain cross-entropy (the undefended baseline).

    Threat model: none assumed; this is the reference every defense is compared against.

    Example::

        model = NoDefense().train(protocol, seed=0)
    """
