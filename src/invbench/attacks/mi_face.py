"""MI-Face: gradient descent in input space (Fredrikson, Jha, Ristenpart, CCS 2015)."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from invbench.access import Access, WhiteBox
from invbench.attacks.base import Attack, ChunkParams, Reconstruction
from invbench.attacks.components import (
    expand_restarts,
    l2_prior,
    make_identity_loss,
    select_best,
    target_confidence,
    total_variation,
)
from invbench.errors import AccessError, ConfigError
from invbench.progress import progress_bar
from invbench.registry import register_attack

#: early-stopping criteria are evaluated every this many steps (one host sync each)
CHECK_EVERY = 25
#: an image's cost must drop by more than this within ``beta`` steps to count as progress
MIN_DELTA = 1e-4


@register_attack("mi-face")
class MIFace(Attack):
    """MI-Face: gradient descent on the input image (Fredrikson et al. 2015; white-box).

    Paper: M. Fredrikson, S. Jha, T. Ristenpart, "Model Inversion Attacks that Exploit
    Confidence Information and Basic Countermeasures", CCS 2015,
    https://doi.org/10.1145/2810103.2813677 (Algorithm 1, MI-Face).

    Threat model: white-box — needs the target's logits and their gradient with respect
    to the input (``access.logits`` of a :class:`~invbench.access.WhiteBox`); black-box and
    label-only access are refused with :class:`~invbench.errors.AccessError`.

    For each requested label ``y`` it minimises, over images ``x`` in ``[0, 1]``::

        cost(x) = loss(f(x), y) + tv_weight * TV(x) + l2_weight * ||x||^2 / (C*H*W)

    where ``loss`` is Fredrikson's ``1 - softmax(f(x))[y]`` (``loss="prob"``), or
    cross-entropy / LOMMA's logit loss / the max-margin loss. Each step is
    ``x <- clamp(x - lr * grad cost(x), 0, 1)``: the clamp is the paper's ``Process``
    step, a projection onto the valid pixel box (chosen over a sigmoid parameterisation
    because it is exactly the paper's update, keeps the step size meaningful in pixel
    units, and lets background pixels sit at exactly 0). All ``labels x restarts``
    images are optimised in one batched forward/backward per step; the gradient is taken
    with respect to the input only. The per-image costs are summed, so every image's
    trajectory is independent of the batch it is in.

    As in Algorithm 1 (``return argmin_x c(x)`` over the iterates), each image returned is
    its **best iterate**: the one with the lowest cost seen, counting the start, every
    iterate and the final image (the cost of step ``t`` is that of the image before step
    ``t``'s update; the final image is scored in the closing pass). The best iterate is
    kept on the device with a per-image mask, without host syncs.

    Starts: ``init="uniform"`` (default) draws every start, pixel by pixel, from
    ``U[0, init_scale]`` with the run's seeded generator, so the ``per_label``
    reconstructions of one class are distinct samples and the same seed gives the same
    images. ``init="zeros"`` is the paper's start (the all-zero image); it is deterministic,
    so all ``per_label`` reconstructions of a class are then *identical*, and ``restarts``
    must be 1.

    Early stopping (Algorithm 1's ``gamma`` and ``beta``) is per image and checked every
    25 steps (one host sync each): an image freezes once ``1 - p(y|x) <= gamma``, or when
    its cost has not dropped by more than 1e-4 within the last ``beta`` steps; the loop
    ends when all are frozen. ``restarts`` > 1 optimises independent starts and keeps,
    per requested image, the restart whose best iterate has the highest target confidence.

    Defaults that differ from the paper (which inverted 112x92 faces from softmax
    regression, MLP and autoencoder models): ``loss="ce"`` instead of ``1 - p``, 300
    steps instead of alpha = 5000, early stopping off, and a seeded dim-noise start
    (``U[0, 0.2]``) instead of the zero image. On 8x8 digits with a CNN target,
    cross-entropy at the paper's lr 0.1 reaches confident, recognisable digits in a few
    hundred steps, while ``1 - p`` stalls on labels whose probability starts near 0 (its
    gradient vanishes there). A dim-noise start keeps the zero start's dark background
    while giving distinct samples: on digits an independent evaluator recognised 90-100%
    of the reconstructions from ``U[0, 0.2]`` starts, 100% from zeros and only 60-70% from
    full-range noise (``init_scale=1``).
    ``MIFace(loss="prob", steps=5000, beta=100, init="zeros")`` is the paper's setting.

    Arguments (keyword-only; see ``describe_params()``): ``steps``, ``lr``, ``loss``,
    ``init``, ``init_scale``, ``restarts``, ``tv_weight``, ``l2_weight``, ``gamma``,
    ``beta``.

    Shape:
        ``invert(access, labels, per_label)`` returns a :class:`Reconstruction` with images
        ``(len(labels) * per_label, C, H, W)`` in [0, 1] (a label's ``per_label`` images
        are consecutive); ``scores`` are the target's softmax probability of each image's
        label (higher = more confident).

    Example::

        attack = MIFace(steps=300, loss="ce")
        access = WhiteBox(model, num_classes=5, image_shape=(1, 8, 8))
        rec = attack.invert(access, [0, 1, 2], per_label=2, seed=0)
        rec.images.shape  # torch.Size([6, 1, 8, 8])
    """

    access: ClassVar[str] = "white-box"
    needs_public: ClassVar[bool] = False
    CHUNKS: ClassVar[str | None] = "image"

    class Params(ChunkParams):
        """MI-Face's hyperparameters (paper defaults noted in each description)."""
        steps: int = Field(300, ge=1, description="gradient steps (paper alpha: 5000)")
        lr: float = Field(0.1, gt=0, description="step size on the pixels (paper lambda: 0.1)")
        loss: Literal["prob", "ce", "logit", "max-margin"] = Field(
            "ce", description="identity cost: 'prob' = 1 - p(y|x) (paper), 'ce', 'logit', "
            "'max-margin'"
        )
        init: Literal["uniform", "zeros"] = Field(
            "uniform", description="start image: seeded noise U[0, init_scale], a distinct "
            "one per image (default), or all zeros (paper; every start identical)"
        )
        init_scale: float = Field(
            0.2, gt=0, le=1,
            description="upper end of the init='uniform' noise (1 = full-range noise)",
        )
        restarts: int = Field(
            1, ge=1, description="independent starts per image (needs init='uniform' if > 1)"
        )
        tv_weight: float = Field(0.0, ge=0, description="weight of the total-variation prior")
        l2_weight: float = Field(0.0, ge=0, description="weight of the L2 (pixel energy) prior")
        gamma: float = Field(
            0.0, ge=0, lt=1,
            description="stop an image once 1 - p(y|x) <= gamma (Algorithm 1's gamma); "
            "0 disables",
        )
        beta: int = Field(
            0, ge=0,
            description="stop an image when its cost stalls for beta steps (paper: 100); "
            "0 disables",
        )

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        p = self.params
        if p.restarts > 1 and p.init == "zeros":
            raise ConfigError(
                f"The 'restarts' parameter of attack '{self.name}' must be 1 when "
                f"init='zeros' (all zero starts are identical). Got {p.restarts} instead; "
                "use init='uniform'."
            )
        self._identity = make_identity_loss(p.loss)

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        if not isinstance(access, WhiteBox):
            raise AccessError(
                f"attack '{self.name}' needs white-box access (input gradients), "
                f"got {access.level}"
            )
        p = self.params
        n = labels.shape[0]
        lab, groups = expand_restarts(labels, p.restarts)
        shape = (lab.shape[0], *access.image_shape)
        if p.init == "zeros":
            x = torch.zeros(shape, device=access.device)
        else:
            x = torch.rand(shape, generator=generator, device=access.device)
            x.mul_(p.init_scale)
        x.requires_grad_(True)

        n_img = lab.shape[0]
        lr = p.lr
        early = p.gamma > 0 or p.beta > 0
        # the best iterate per image (Algorithm 1 returns argmin cost): image, cost, score
        best_x = x.detach().clone()
        best_cost = torch.full((n_img,), float("inf"), device=access.device)
        best_score = torch.zeros(n_img, device=access.device)
        stall_best = torch.full((n_img,), float("inf"), device=access.device)
        last_gain = torch.zeros(n_img, dtype=torch.long, device=access.device)
        mask: Tensor | None = None  # (N, 1, 1, 1) float, 1 = still optimising
        reported = 0
        with progress_bar(p.steps, self.name, quiet=quiet) as bar:
            for step in range(1, p.steps + 1):
                logits = access.logits(x)
                cost = self._cost(logits, lab, x)
                (grad,) = torch.autograd.grad(cost.sum(), x)
                with torch.no_grad():
                    # ``cost`` is the cost of ``x`` before this step's update
                    self._keep_best(x, cost.detach(), logits.detach(), lab,
                                    best_x, best_cost, best_score)
                    if mask is not None:
                        grad.mul_(mask)
                    x.sub_(grad, alpha=lr).clamp_(0.0, 1.0)
                if step % CHECK_EVERY == 0 or step == p.steps:
                    done = False
                    if early:
                        mask = self._update_mask(
                            cost.detach(), logits.detach(), lab, stall_best, last_gain, step
                        )
                        done = mask is not None and not bool(mask.any())
                    bar.advance(step - reported)
                    reported = step
                    if not quiet:
                        bar.update(cost=float(cost.detach().mean()))
                    if done:
                        break

        x = x.detach()
        with torch.inference_mode():
            logits = access.logits(x)  # scores the final image too
            self._keep_best(x, self._cost(logits, lab, x), logits, lab,
                            best_x, best_cost, best_score)
        pick = select_best(best_score, groups).squeeze(1) if p.restarts > 1 else torch.arange(
            n, device=x.device
        )
        return Reconstruction(images=best_x[pick], labels=labels, scores=best_score[pick])

    def _cost(self, logits: Tensor, lab: Tensor, x: Tensor) -> Tensor:
        """Per-image cost ``(N,)``: identity loss plus the weighted TV and L2 priors."""
        p = self.params
        cost = self._identity(logits, lab)
        if p.tv_weight > 0:
            cost = cost + p.tv_weight * total_variation(x)
        if p.l2_weight > 0:
            cost = cost + p.l2_weight * l2_prior(x)
        return cost

    @staticmethod
    def _keep_best(x: Tensor, cost: Tensor, logits: Tensor, lab: Tensor, best_x: Tensor,
                   best_cost: Tensor, best_score: Tensor) -> None:
        """Where ``cost`` beats ``best_cost`` (NaN never does), keep ``x`` and its score."""
        better = cost < best_cost
        best_cost.copy_(torch.where(better, cost, best_cost))
        best_score.copy_(torch.where(better, target_confidence(logits, lab), best_score))
        best_x.copy_(torch.where(better.view(-1, 1, 1, 1), x.detach(), best_x))

    def _update_mask(self, cost: Tensor, logits: Tensor, lab: Tensor, stall_best: Tensor,
                     last_gain: Tensor, step: int) -> Tensor | None:
        """Per-image early stopping (Algorithm 1's gamma and beta); ``None`` = all active."""
        p = self.params
        active = torch.ones_like(cost, dtype=torch.bool)
        if p.gamma > 0:
            active &= (1.0 - target_confidence(logits, lab)) > p.gamma
        if p.beta > 0:
            gained = cost < stall_best - MIN_DELTA
            stall_best.copy_(torch.minimum(stall_best, cost))
            last_gain.masked_fill_(gained, step)
            active &= (step - last_gain) < p.beta
        if bool(active.all()):
            return None
        return active.float().view(-1, 1, 1, 1)

