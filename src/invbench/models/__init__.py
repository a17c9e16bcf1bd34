"""Models: target classifiers per resolution, evaluator classifiers (resnet, mlp, vit, dense)
and GAN priors (WGAN-GP, KEDMI's semi-supervised GAN, PLG-MI's conditional GAN)."""

from invbench.models.cgan import (
    ConditionalBatchNorm2d,
    ConditionalGenerator,
    ProjectionDiscriminator,
    make_cgan,
)
from invbench.models.classifiers import (
    EVALUATOR_ARCHS,
    SURROGATE_ARCHS,
    TARGET_ARCHS,
    Classifier,
    DenseLayer,
    DepthwiseSeparable,
    Fire,
    PreActBlock,
    ViTBlock,
    check_image_shape,
    evaluator_arch,
    list_archs,
    make_classifier,
    resolve_arch,
    vit_patch_size,
)
from invbench.models.gan import SUPPORTED_HEIGHTS, Discriminator, Generator, make_gan
from invbench.models.ssgan import (
    MinibatchDiscrimination,
    MinibatchDiscriminator,
    make_ssgan,
    real_logit,
)
from invbench.models.stochastic import is_stochastic, reseed

__all__ = [
    "real_logit",
    "make_ssgan",
    "MinibatchDiscriminator",
    "MinibatchDiscrimination",
    "make_cgan",
    "ProjectionDiscriminator",
    "ConditionalGenerator",
    "ConditionalBatchNorm2d",
    "EVALUATOR_ARCHS",
    "SUPPORTED_HEIGHTS",
    "SURROGATE_ARCHS",
    "TARGET_ARCHS",
    "Classifier",
    "DenseLayer",
    "DepthwiseSeparable",
    "Discriminator",
    "Fire",
    "Generator",
    "PreActBlock",
    "ViTBlock",
    "check_image_shape",
    "evaluator_arch",
    "is_stochastic",
    "list_archs",
    "make_classifier",
    "make_gan",
    "reseed",
    "resolve_arch",
    "vit_patch_size",
]
