"""Training-time defenses, one per module, registered by name (see ``invbench list``)."""

from invbench.defenses import mid, none, random_erasing  # noqa: F401  (registration)
from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.defenses.mid import MID, VIBClassifier
from invbench.defenses.none import NoDefense
from invbench.defenses.random_erasing import RandomErasing

__all__ = [
    "MID",
    "Defense",
    "NoDefense",
    "RandomErasing",
    "TrainConfig",
    "TrainingData",
    "VIBClassifier",
]
