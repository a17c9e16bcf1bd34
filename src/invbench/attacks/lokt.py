"""LOKT: label-only inversion via knowledge transfer (Nguyen et al., NeurIPS 2023)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access, WhiteBox
from invbench.attacks.base import Reconstruction
from invbench.attacks.plg_mi import PLGMI, PLGMISearchParams
from invbench.data.protocol import Split
from invbench.errors import ConfigError
from invbench.registry import register_attack

#: parameters that determine LOKT's prior (T-ACGAN and surrogate; its cache key)
PRIOR_PARAMS: tuple[str, ...] = (
    "latent_dim", "gan_steps", "gan_batch_size", "gan_lr", "n_dis", "class_start",
    "class_weight", "samples_per_class", "surrogate_arch", "surrogate_epochs",
)


@register_attack("lokt")
class LOKT(PLGMI):
    """LOKT: a target-aware ACGAN and a surrogate from hard labels, then a white-box search.

    Paper: N.-B. Nguyen, K. Chandrasegaran, M. Abdollahzadeh, N.-M. Cheung, "Label-Only
    Model Inversion Attacks via Knowledge Transfer", NeurIPS 2023,
    https://arxiv.org/abs/2310.19342.

    Threat model: label-only — the target's top-1 label for images the attacker chooses,
    plus public images of other classes (unlabelled). No probabilities, no gradients.

    :meth:`prepare` (cached per target, all queries counted in ``prepare_queries_``):

    1. *T-ACGAN* (:func:`invbench.training.tacgan.train_tacgan`): a conditional generator
       ``G(z, y)`` and an ACGAN discriminator with a real/fake and a class head
       (:func:`invbench.models.cgan.make_tacgan`); from ``class_start`` generator steps on,
       the class head learns the label the target answers for each generated image and the
       generator learns to make ``G(z, y)`` fall in class ``y`` — one label-only query per
       generated image in every discriminator step.
    2. *Surrogate*: ``samples_per_class`` images ``G(z, y)`` per class, labelled by the
       target (one query each), train a classifier of family ``surrogate_arch`` (with the
       run's random shifts) — the knowledge transferred from the target.

    :meth:`invert` is PLG-MI's search (max-margin identity loss over augmented views,
    restarts, selection under augmentation) in the T-ACGAN's latent space, against the
    surrogate as a white-box model: it queries the target not at all; ``scores`` are the
    surrogate's confidence.

    Query cost: ``gan_steps x n_dis x gan_batch_size`` after ``class_start`` generator
    steps, plus ``num_classes x samples_per_class``, all in prepare; none in invert.

    Defaults that differ from the paper, and why: one surrogate (the paper ensembles
    several, e.g. DenseNets) of the small ``mobile`` family; a DCGAN-style generator and a
    plain spectrally normalised discriminator (the reference: SNGAN ResNets); ``gan_steps``
    600, ``class_start`` 100 and ``samples_per_class`` 500 (the reference's) sized for CPUs;
    ``n_dis`` 1, ``class_weight`` 1.5 and Adam (2e-4, betas (0, 0.9)) are the reference's.

    Example::

        attack = LOKT(gan_steps=300, iterations=200)
        access = LabelOnly.local(model, num_classes=5, image_shape=(1, 8, 8))
        attack.prepare(protocol.public, access=access, seed=0)
        rec = attack.invert(access, [0, 1], per_label=3, seed=0)
    """

    access: ClassVar[str] = "label-only"
    PRIOR_KIND: ClassVar[str] = "t-acgan"
    PRIOR_PARAMS: ClassVar[tuple[str, ...]] = PRIOR_PARAMS
    USES_TARGET: ClassVar[bool] = True

    class Params(PLGMISearchParams):
        """LOKT's T-ACGAN, surrogate and (PLG-MI's) search."""

        n_dis: int = Field(1, ge=1, description="discriminator steps per generator step "
                           "(reference: 1)")
        class_start: int = Field(100, ge=0, description="generator steps before the class "
                                 "losses start (reference: 1000)")
        class_weight: float = Field(1.5, ge=0, description="weight of the class losses "
                                    "(reference: 1.5)")
        samples_per_class: int = Field(500, ge=1, description="generated images per class "
                                       "labelled by the target for the surrogate "
                                       "(reference: 500)")
        surrogate_arch: Literal["mobile", "squeeze", "cnn-s", "cnn-m", "cnn-l", "resnet",
                                "dense"] = Field("mobile", description="surrogate family")
        surrogate_epochs: int = Field(20, ge=1, description="surrogate training epochs")
        gan_lr: float = Field(2e-4, gt=0, description="T-ACGAN Adam learning rate "
                              "(reference: 2e-4)")

    def __init__(self, **params: object) -> None:
        from invbench.attacks.components import make_augment

        super(PLGMI, self).__init__(**params)
        self._augment = make_augment(self.params.image_augment)
        #: the surrogate the search attacks (frozen, eval), or ``None`` before prepare
        self.surrogate_: nn.Module | None = None

    def check(self, *, image_shape: tuple[int, int, int]) -> None:
        """Refuse shapes the conditional GAN or the surrogate family cannot take."""
        super().check(image_shape=image_shape)
        from invbench.models import make_classifier

        with torch.random.fork_rng(devices=[]):
            make_classifier(self.params.surrogate_arch, image_shape=image_shape, num_classes=2)

    def build_prior(
        self, image_shape: tuple[int, int, int], *, num_classes: int
    ) -> dict[str, nn.Module]:
        """An untrained T-ACGAN (conditional generator, ACGAN discriminator) and surrogate."""
        from invbench.models import make_classifier
        from invbench.models.cgan import make_tacgan

        generator, disc = make_tacgan(image_shape, num_classes=num_classes,
                                      latent_dim=self.params.latent_dim)
        surrogate = make_classifier(self.params.surrogate_arch, image_shape=image_shape,
                                    num_classes=num_classes)
        return {"generator": generator, "discriminator": disc, "surrogate": surrogate}

    def train_prior(
        self,
        modules: dict[str, nn.Module],
        public: Split,
        *,
        access: Access,
        seed: int,
        quiet: bool,
    ) -> dict[str, Any]:
        """The T-ACGAN on the public images and the target's labels, then the surrogate."""
        from invbench.training import train_classifier
        from invbench.training.tacgan import train_tacgan

        p = self.params
        dev = access.device
        G = modules["generator"]
        losses = train_tacgan(
            G, modules["discriminator"], public.x.to(dev), label_fn=access.predict_label,
            num_classes=access.num_classes, steps=p.gan_steps, batch_size=p.gan_batch_size,
            lr=p.gan_lr, n_dis=p.n_dis, class_start=p.class_start,
            class_weight=p.class_weight, seed=int(seed), device=dev, quiet=quiet,
            desc=f"{self.name}: train T-ACGAN",
        )
        k, m = access.num_classes, p.samples_per_class
        gen = torch.Generator(device=dev).manual_seed(int(seed) + 1)
        y = torch.arange(k, device=dev).repeat_interleave(m)
        images, answers = [], []
        for s in range(0, y.numel(), 256):
            z = torch.randn((min(256, y.numel() - s), p.latent_dim), generator=gen, device=dev)
            with torch.inference_mode():
                batch = G(z, y[s : s + z.shape[0]])
            images.append(batch)
            answers.append(access.predict_label(batch))
        x_s, y_s = torch.cat(images).cpu(), torch.cat(answers).cpu()
        train_classifier(modules["surrogate"], x_s, y_s, epochs=p.surrogate_epochs,
                         augment=True, seed=int(seed), device=dev, quiet=quiet,
                         desc=f"{self.name}: train surrogate")
        agree = float((torch.cat(answers) == y).float().mean())
        return {"losses": {k2: float(v) for k2, v in losses.items()},
                "generator_agreement": agree}

    def _prepare(self, public: Split | None, *, access: Access, cache: Any, seed: int,
                 quiet: bool) -> None:
        super()._prepare(public, access=access, cache=cache, seed=seed, quiet=quiet)
        assert self.prior_modules_ is not None
        self.surrogate_ = self.prior_modules_["surrogate"]

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        if self.surrogate_ is None:
            raise ConfigError(f"attack '{self.name}' has no surrogate yet: call "
                              "prepare(protocol.public, access=...) before invert()")
        white = WhiteBox(self.surrogate_.to(access.device).eval(),
                         num_classes=access.num_classes, image_shape=access.image_shape)
        return super()._invert(white, labels, generator=generator, quiet=quiet)
