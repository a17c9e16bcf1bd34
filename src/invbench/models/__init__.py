"""Models: target classifiers per resolution, evaluator classifiers and GAN priors."""

from invbench.models.classifiers import (
    EVALUATOR_ARCHS,
    TARGET_ARCHS,
    Classifier,
    PreActBlock,
    check_image_shape,
    evaluator_arch,
    list_archs,
    make_classifier,
    resolve_arch,
)
from invbench.models.gan import SUPPORTED_HEIGHTS, Discriminator, Generator, make_gan

__all__ = [
    "EVALUATOR_ARCHS",
    "SUPPORTED_HEIGHTS",
    "TARGET_ARCHS",
    "Classifier",
    "Discriminator",
    "Generator",
    "PreActBlock",
    "check_image_shape",
    "evaluator_arch",
    "list_archs",
    "make_classifier",
    "make_gan",
    "resolve_arch",
]
