"""Training-time defenses, one per module, registered by name (see ``invbench list``)."""

from invbench.defenses import label_smoothing, mid, none, random_erasing  # noqa: F401
from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.defenses.label_smoothing import LabelSmoothing
from invbench.defenses.mid import MID, VIBClassifier
from invbench.defenses.none import NoDefense
from invbench.defenses.random_erasing import RandomErasing

__all__ = [
    "MID",
    "LabelSmoothing",
    "Defense",
    "NoDefense",
    "RandomErasing",
    "TrainConfig",
    "TrainingData",
    "VIBClassifier",
]
