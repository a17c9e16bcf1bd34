"""GMI: generative model inversion with a WGAN-GP prior (Zhang et al., CVPR 2020)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from invbench.access import Access
from invbench.attacks.base import Reconstruction
from invbench.attacks.components import (
    GaussianLatent,
    NesterovSGD,
    expand_restarts,
    select_best,
    target_confidence,
)
from invbench.attacks.gan_base import WGANPriorAttack, WGANPriorParams
from invbench.progress import progress_bar
from invbench.registry import register_attack

#: progress-bar refresh interval in optimisation steps (the only host sync in the loop)
LOG_EVERY = 50

@register_attack("gmi")
class GMI(WGANPriorAttack):
    """GMI: latent search in a GAN trained on public data (Zhang et al. 2020; white-box).

    Paper: Y. Zhang, R. Jia, H. Pei, W. Wang, B. Li, D. Song, "The Secret Revealer:
    Generative Model-Inversion Attacks Against Deep Neural Networks", CVPR 2020,
    https://arxiv.org/abs/1911.07135.

    Threat model: white-box — gradients of the target's logits with respect to its input
    (:class:`~invbench.access.WhiteBox`), plus public images of *other* classes of the same
    domain. Black-box and label-only access are refused with
    :class:`~invbench.errors.AccessError`.

    :meth:`prepare` trains a WGAN-GP generator ``G`` and critic ``D`` on the public split
    only (:func:`invbench.models.make_gan`, :func:`invbench.training.train_wgan_gp`),
    cached by content when a :class:`~invbench.cache.Cache` is given: the key holds a
    hash of the public images and labels, the image shape, the prior's hyperparameters and
    the seed. :meth:`invert` then searches latents ``z`` for each label ``y``::

        min_z  -D(G(z)) + lambda_id * identity_loss(f(G(z)), y),   z clipped to [-clip, clip]

    with SGD and Nesterov momentum, ``z`` drawn from N(0, I) and clipped. ``restarts``
    latents per requested image are optimised together with all labels in one batched
    forward/backward per step (gradients w.r.t. ``z`` only; ``G`` is in eval mode, so the
    latents do not interact); the restart whose image the target gives the highest softmax
    probability of its label is kept. ``identity_loss`` may be ``"ce"`` (the paper),
    ``"logit"`` (LOMMA, Nguyen et al. 2023) or ``"max-margin"`` (PLG-MI), so GMI + LOMMA's
    loss is ``GMI(identity_loss="logit")``.

    Defaults that differ from the paper, and why:

    * ``iterations`` 300 (paper 1500) and ``gan_steps`` 1000 generator steps: on 8x8 digits
      the search has converged by then, and prior training plus inversion of 5 labels x 5
      images take about a minute on two CPU cores; both are parameters.
    * ``lr`` 0.002 (paper 0.02): the paper's step applies to a loss *averaged* over a batch
      of about 60 latents, i.e. about 3e-4 per latent; here the per-latent losses are
      *summed* (so a latent's path does not depend on how many others share its batch),
      and with 5x fewer iterations the step is about 6x the paper's per-latent one. On
      digits this matches the paper's setting (3e-4 x 1500 steps) within noise.
    * ``restarts`` 5, ``momentum`` 0.9, ``lambda_id`` 100 and ``clip`` 1 are the paper's.

    LOMMA (Nguyen et al., "Re-thinking Model Inversion Attacks Against Deep Neural Networks",
    CVPR 2023) is a plug-in: ``GMI(augment="lomma", identity_loss="logit")`` distils
    ``surrogates`` models of another family (``surrogate_arch``) from the target's soft labels
    on the public data during :meth:`prepare` (counted in ``prepare_queries_``, cached per
    target) and averages the identity loss over the target and the surrogates, plus LOMMA's
    ``p_reg`` feature term (see :mod:`invbench.attacks.components.model_augmentation` and
    ``docs/lomma.md``). On the CLI: ``--attack gmi:augment=lomma,identity_loss=logit``.

    Arguments (keyword-only; see ``describe_params()``): ``iterations``, ``restarts``,
    ``lr``, ``momentum``, ``lambda_id``, ``clip``, ``identity_loss``, ``latent_dim``,
    ``gan_steps``, ``gan_batch_size``, ``gan_lr``, ``n_critic``, ``gp_weight``.

    Shape:
        ``invert(access, labels, per_label)`` returns ``(len(labels) * per_label, C, H, W)``
        images in [0, 1] (heights 8, 28, 32, 64, as the GAN supports); ``scores`` are the
        target's softmax probability of each image's label.

    Example::

        attack = GMI(gan_steps=500, iterations=200)
        access = WhiteBox(model, num_classes=5, image_shape=(1, 8, 8))
        attack.prepare(protocol.public, access=access, seed=0)
        rec = attack.invert(access, [0, 1], per_label=3, seed=0)
        rec.images.shape  # torch.Size([6, 1, 8, 8])
    """

    class Params(WGANPriorParams):
        """GMI's hyperparameters (paper defaults noted in each description), plus LOMMA's."""
        iterations: int = Field(300, ge=1, description="latent optimisation steps (paper: 1500)")
        restarts: int = Field(5, ge=1, description="random starts per image, best kept (paper: 5)")
        lr: float = Field(
            0.002, gt=0, description="SGD step size per latent (paper: 0.02 on a batch mean)"
        )
        momentum: float = Field(
            0.9, ge=0, lt=1, description="Nesterov momentum of the latent SGD (paper: 0.9)"
        )
        lambda_id: float = Field(
            100.0, ge=0, description="weight of the identity loss vs the prior (paper: 100)"
        )
        clip: float = Field(
            1.0, gt=0, description="latents are clipped to [-clip, clip] (paper: 1)"
        )
        identity_loss: Literal["ce", "logit", "max-margin", "prob"] = Field(
            "ce", description="identity loss: 'ce' (paper), 'logit' (LOMMA), 'max-margin', 'prob'"
        )

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        prior = self.prior(access)
        p = self.params
        dev = access.device
        G, D = prior["generator"], prior["discriminator"]
        lab, groups = expand_restarts(labels, p.restarts)
        sampler = GaussianLatent(p.latent_dim, clip=p.clip)
        z = sampler.sample(lab.shape[0], generator=generator, device=dev).requires_grad_(True)
        opt = NesterovSGD(lr=p.lr, momentum=p.momentum)
        lam = p.lambda_id

        reported = 0
        with progress_bar(p.iterations, self.name, quiet=quiet) as bar:
            for step in range(1, p.iterations + 1):
                fake = G(z)
                prior = -D(fake)
                identity = self.identity_loss(access, fake, lab)
                total = prior + lam * identity
                (grad,) = torch.autograd.grad(total.sum(), z)
                sampler.project_(opt.step_(z, grad))
                if step % LOG_EVERY == 0 or step == p.iterations:
                    if not quiet:
                        bar.update(prior=float(prior.detach().mean()),
                                   identity=float(identity.detach().mean()))
                    bar.advance(step - reported)
                    reported = step

        with torch.inference_mode():
            images = G(z.detach())
            scores = target_confidence(access.logits(images), lab)
        pick = select_best(scores, groups).squeeze(1)
        return Reconstruction(images=images[pick], labels=labels, scores=scores[pick])
