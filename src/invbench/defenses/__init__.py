"""Training-time defenses, one per module, registered by name (see ``invbench list``)."""

from invbench.defenses import (  # noqa: F401  (registration)
    bido,
    dp_sgd,
    label_smoothing,
    mid,
    none,
    output,
    random_erasing,
    tl_dmi,
    trap_mid,
)
from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.defenses.bido import BiDO
from invbench.defenses.dp_sgd import DPSGD
from invbench.defenses.label_smoothing import LabelSmoothing
from invbench.defenses.mid import MID, VIBClassifier
from invbench.defenses.none import NoDefense
from invbench.defenses.output import Noise, OutputProcessing, Round, TopK
from invbench.defenses.random_erasing import RandomErasing
from invbench.defenses.tl_dmi import TLDMI
from invbench.defenses.trap_mid import TrapMID

__all__ = [
    "DPSGD",
    "BiDO",
    "MID",
    "LabelSmoothing",
    "Defense",
    "NoDefense",
    "Noise",
    "OutputProcessing",
    "Round",
    "TopK",
    "RandomErasing",
    "TLDMI",
    "TrapMID",
    "TrainConfig",
    "TrainingData",
    "VIBClassifier",
]
