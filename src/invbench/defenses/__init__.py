"""Training-time defenses, one per module, registered by name (see ``invbench list``)."""

from invbench.defenses import mid, none  # noqa: F401  (registration)
from invbench.defenses.base import Defense, TrainConfig
from invbench.defenses.mid import MID, VIBClassifier
from invbench.defenses.none import NoDefense

__all__ = ["MID", "Defense", "NoDefense", "TrainConfig", "VIBClassifier"]
