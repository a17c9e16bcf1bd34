"""Training loops shared by defenses, attacks and metrics.

- :func:`train_classifier`: mini-batch Adam on a classifier with any per-batch loss (a
  defense passes its own, e.g. cross-entropy plus an information bottleneck term),
  optionally on adversarial examples (PGD or FGSM-RS, :mod:`invbench.adversarial`); its
  plug-in points (``params``, ``optimizer``, ``batch_fn``, ``sampler``) let defenses such
  as TL-DMI, DP-SGD, Trap-MID and random erasing reuse the one loop.
- :func:`train_wgan_gp`: a WGAN-GP image prior (Gulrajani et al. 2017, "Improved Training
  of Wasserstein GANs", https://arxiv.org/abs/1704.00028) from public data.
- :func:`train_kedmi_gan`: KEDMI's semi-supervised GAN on the target's soft labels.
- :func:`train_plgmi_cgan`: PLG-MI's conditional GAN on pseudo-labelled public data.
- :func:`apply_update`: a copy of a deployed model fine-tuned on an update set
  (:class:`UpdateRecipe`: the online-learning scenario of Updates-Leak).
- :func:`evaluate_accuracy`: batched top-1 accuracy.

All loops are seeded (same seed and same initial weights give the same trained weights on
CPU), device-agnostic, show a progress bar unless ``quiet`` and synchronise with the host
only every few steps, for that bar.
"""

from invbench.training._common import LossFn, default_max_shift
from invbench.training.cgan import train_plgmi_cgan
from invbench.training.classifier import (
    BatchFn,
    OptimizerFactory,
    Sampler,
    evaluate_accuracy,
    train_classifier,
)
from invbench.training.distill import distill_classifier
from invbench.training.kedmi import train_kedmi_gan
from invbench.training.update import (
    UpdateRecipe,
    apply_update,
    draw_label_mixtures,
    draw_samples,
)
from invbench.training.wgan import train_wgan_gp

__all__ = [
    "UpdateRecipe",
    "apply_update",
    "draw_label_mixtures",
    "draw_samples",
    "BatchFn",
    "OptimizerFactory",
    "Sampler",
    "LossFn",
    "default_max_shift",
    "distill_classifier",
    "evaluate_accuracy",
    "train_classifier",
    "train_kedmi_gan",
    "train_plgmi_cgan",
    "train_wgan_gp",
]
