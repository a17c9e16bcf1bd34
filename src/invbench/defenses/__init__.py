"""Training-time defenses, one per module, registered by name (see ``invbench list``)."""

from invbench.defenses import label_smoothing, mid, none, random_erasing, tl_dmi  # noqa: F401
from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.defenses.label_smoothing import LabelSmoothing
from invbench.defenses.mid import MID, VIBClassifier
from invbench.defenses.none import NoDefense
from invbench.defenses.random_erasing import RandomErasing
from invbench.defenses.tl_dmi import TLDMI

__all__ = [
    "MID",
    "LabelSmoothing",
    "Defense",
    "NoDefense",
    "RandomErasing",
    "TLDMI",
    "TrainConfig",
    "TrainingData",
    "VIBClassifier",
]
