"""Model inversion attacks, one per module, registered under their names.

Importing this package registers every built-in attack with
:data:`invbench.registry.ATTACKS` (``invbench list`` shows them); build one by name with
``ATTACKS.get("gmi")(iterations=500)`` or import the class. Shared stages (latent samplers,
identity losses, priors, best-restart selection) live in :mod:`invbench.attacks.components`.
"""

from invbench.attacks import components
from invbench.attacks.base import Attack, AttackBase, Reconstruction, UpdateAttack
from invbench.attacks.brep_mi import BREPMI
from invbench.attacks.c2fmi import C2FMI
from invbench.attacks.deepinversion import DeepInversion
from invbench.attacks.gmi import GMI
from invbench.attacks.kedmi import KEDMI
from invbench.attacks.knowledge_alignment import KnowledgeAlignment
from invbench.attacks.lokt import LOKT
from invbench.attacks.mi_face import MIFace
from invbench.attacks.mirror_bb import MirrorBB
from invbench.attacks.plg_mi import PLGMI
from invbench.attacks.rlb_mi import RLBMI
from invbench.attacks.update_leaks import UpdateLeaks

__all__ = [
    "BREPMI",
    "C2FMI",
    "GMI",
    "KEDMI",
    "PLGMI",
    "RLBMI",
    "Attack",
    "AttackBase",
    "UpdateAttack",
    "UpdateLeaks",
    "DeepInversion",
    "KnowledgeAlignment",
    "LOKT",
    "MIFace",
    "MirrorBB",
    "Reconstruction",
    "components",
]
