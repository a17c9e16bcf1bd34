"""DeepInversion: images optimised to match the target's BatchNorm statistics (Yin et al. 2020)."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access, WhiteBox
from invbench.attacks.base import Attack, Reconstruction
from invbench.attacks.components import (
    Compose,
    Jitter,
    RandomFlip,
    chunked,
    make_optimizer,
    target_confidence,
)
from invbench.errors import AccessError, ConfigError
from invbench.params import Params as _Params
from invbench.progress import progress_bar
from invbench.registry import register_attack

#: progress-bar / loss-history interval in optimisation steps (the only host sync in the loop)
LOG_EVERY = 50


class BNStatistics:
    """Forward hooks on every ``BatchNorm2d`` of a model that measure DeepInversion's R_feature.

    On each forward, the hook of a BN layer takes the layer's *input* ``a`` ``(B, C, H, W)``,
    its batch mean ``mu_c`` and biased batch variance ``s2_c`` per channel, and stores
    ``||mu - running_mean||_2 + ||s2 - running_var||_2`` (norms over channels, not squared:
    the reference code's form). :meth:`loss` sums them over layers, the first one weighted by
    ``first_bn_multiplier``. Use as a context manager so the hooks are always removed.

    Example::

        with BNStatistics(model, first_bn_multiplier=10.0) as bn:
            model(x)
            r_feature = bn.loss()        # scalar, differentiable w.r.t. x
    """

    def __init__(self, model: nn.Module, *, first_bn_multiplier: float = 1.0) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        if not self.layers:
            raise ConfigError(
                "deepinversion needs a target with BatchNorm layers; this target has no "
                "BatchNorm2d (its statistics are the prior DeepInversion matches)"
            )
        bad = [m for m in self.layers if m.running_mean is None or m.running_var is None]
        if bad:
            raise ConfigError(
                "deepinversion needs BatchNorm layers with running statistics; the target has "
                "a BatchNorm2d built with track_running_stats=False"
            )
        self.weights = [float(first_bn_multiplier)] + [1.0] * (len(self.layers) - 1)
        self._values: list[Tensor | None] = [None] * len(self.layers)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def _hook(self, index: int):  # noqa: ANN202 - a torch forward hook
        def hook(module: nn.BatchNorm2d, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            a = inputs[0]
            mean = a.mean(dim=(0, 2, 3))
            var = a.var(dim=(0, 2, 3), unbiased=False)
            rm = module.running_mean.to(a.dtype)  # type: ignore[union-attr]
            rv = module.running_var.to(a.dtype)  # type: ignore[union-attr]
            self._values[index] = torch.linalg.vector_norm(mean - rm) + torch.linalg.vector_norm(
                var - rv
            )

        return hook

    def __enter__(self) -> BNStatistics:
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.layers)]
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook (idempotent)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def loss(self) -> Tensor:
        """Weighted sum of the per-layer distances measured by the last forward (a scalar)."""
        if any(v is None for v in self._values):
            raise RuntimeError("BNStatistics.loss: no forward pass has run through the hooks")
        return sum(w * v for w, v in zip(self.weights, self._values, strict=True))  # type: ignore[return-value]

    def per_layer(self) -> list[Tensor]:
        """The unweighted distance of each BN layer from the last forward."""
        return [v for v in self._values if v is not None]


def tv_losses(x: Tensor) -> tuple[Tensor, Tensor]:
    """DeepInversion's total variation over four neighbour directions, per image.

    Differences to the right, down and along both diagonals. Returns ``(tv_l1, tv_l2)``, each
    ``(B,)``: ``tv_l1`` the sum over directions of the mean absolute difference (as the
    reference code), ``tv_l2`` the sum over directions of the L2 norm of the differences of
    the image (the reference takes that norm over the whole batch instead).

    Example::

        >>> x = torch.zeros(1, 1, 3, 3); x[..., 1] = 1.0
        >>> [round(float(t[0]), 4) for t in tv_losses(x)]
        [3.0, 6.4495]
    """
    diffs = (
        x[:, :, :, :-1] - x[:, :, :, 1:],
        x[:, :, :-1, :] - x[:, :, 1:, :],
        x[:, :, 1:, :-1] - x[:, :, :-1, 1:],
        x[:, :, :-1, :-1] - x[:, :, 1:, 1:],
    )
    l1 = sum(d.abs().flatten(1).mean(1) for d in diffs)
    l2 = sum(torch.linalg.vector_norm(d.flatten(1), dim=1) for d in diffs)
    return l1, l2  # type: ignore[return-value]


def _cosine_lr(base: float, step: int, *, warmup: int, total: int) -> float:
    """The reference's schedule: linear warm-up over ``warmup`` steps, then cosine to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    span = max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / span)) * base


@register_attack("deepinversion")
class DeepInversion(Attack):
    """DeepInversion: input-space search regularised by the target's BatchNorm statistics.

    Paper: H. Yin, P. Molchanov, Z. Li, J. M. Alvarez, A. Mallya, D. Hoiem, N. K. Jha,
    J. Kautz, "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion",
    CVPR 2020, https://arxiv.org/abs/1912.08795 (reference code: NVlabs/DeepInversion).

    Threat model: white-box — input gradients *and* the target's weights, since the prior is
    the running mean and variance stored in its ``BatchNorm2d`` layers
    (:class:`~invbench.access.WhiteBox`; black-box and label-only access are refused). No
    public data. A target without BatchNorm2d is refused with a :class:`ConfigError`.

    Images ``x`` in [0, 1] start as Gaussian noise and are optimised with Adam on::

        CE(f(aug(x)), y) + r_feature * sum_l w_l (||mu_l(aug(x)) - running_mean_l||_2
                                                + ||var_l(aug(x)) - running_var_l||_2)
          + tv_l1 * TV_l1(aug(x)) + tv_l2 * TV_l2(aug(x)) + l2 * ||aug(x)||_2

    where ``aug`` is a random roll by up to ``jitter`` pixels and (``flip``) a horizontal
    flip with probability 1/2, both shared by the whole batch as in the reference code;
    ``mu_l, var_l`` are the per-channel batch mean and (biased) variance of the *input* of
    BN layer ``l``, observed by forward hooks on ``access.model`` during the same counted
    ``access.logits`` forward that gives the logits (hooks are removed afterwards);
    ``w_1 = first_bn_multiplier`` and ``w_l = 1`` otherwise; CE, TV and L2 are means over
    the batch. The learning rate warms up linearly for ``warmup`` steps, then follows a
    cosine to 0. After every step the pixels are clamped to [0, 1] (the reference clamps
    to the valid pixel range in normalised space the same way).

    **Batches.** The BN term is a statistic of a batch, so the images whose statistics are
    matched together are one *chunk* of at most ``batch_size`` images, optimised together
    (one Adam state, one loss); chunks run one after another. Results therefore depend on
    ``batch_size`` and on how many images are requested (labels x per_label), unlike the
    per-sample attacks. Chunks are formed from the requests in round-robin order (image 1
    of every label, then image 2, ...), as the reference builds its batches from a repeated
    list of classes, so a chunk mixes labels the way the running statistics (taken over all
    classes) expect; images are returned in the requested order.

    **Which iterate.** The last one. The target's confidence in the label saturates within a
    few dozen steps, while the BN and TV terms keep turning the noise into a plausible image
    until the learning rate decays to 0; keeping the most confident iterate would keep an
    early, adversarial-looking one. (The reference keeps the iterate of lowest *batch* loss
    measured on a jittered view, which after the cosine decay is essentially the last.)
    ``scores`` are the target's softmax probability of the label on the final, un-augmented
    images (one more counted forward). :attr:`history_` holds the losses every
    ``LOG_EVERY`` steps.

    The target may be stochastic (MID's sampled bottleneck head): the BN layers sit in the
    deterministic body, and each forward's logits are one sample.

    Defaults that differ from the paper, and why:

    * ``iterations`` 500 (reference: 2,000 at 224 px and on CIFAR, 20,000 in the paper's
      ResNet-50 runs): 8-28 px images settle within a few hundred steps (digits, 5 labels x
      20 images, flip off: ``success`` 0.49 at 300 steps, 0.57 at 500, 0.60 at 1,000), and
      500 steps take about 20 s for 100 digits on one CPU core. One resolution only (the
      reference's default first optimises 2,000 steps at half resolution, pointless at 8 px).
    * ``jitter`` ``max(1, H // 16)`` px (reference: 30 px at 224 px, 2 px at 32 px on CIFAR),
      i.e. about the reference's fraction of the image; 1 px on digits.
    * ``lr`` 0.05 in [0, 1] pixel units (reference 0.2-0.25 in ImageNet-normalised units,
      where one pixel unit is about 4.4 of them: the same step); ``warmup`` 20 steps
      (reference 100 of 2,000). Adam betas (0.5, 0.9) as the reference's settings 0 and 1.
    * ``r_feature`` 0.05 and ``first_bn_multiplier`` 10 as the reference code's defaults
      (the paper's text does not give the first-layer weight).
    * ``tv_l2`` and ``l2``: here per image and in [0, 1] pixel units, so the L2 term pulls
      pixels towards 0 (black, the background of digits/MNIST) where the reference's pulls
      towards the dataset's mean colour (0 in normalised units); ``tv_l2`` is the mean over
      images of each image's TV-L2 norm, where the reference takes one norm over the batch
      (which grows with the batch size). Both 1e-3; on digits they barely matter (``success``
      0.48-0.51 for weights 0 to 1e-2, 300 steps).
    * ``flip`` on, as the paper and reference. Digits are not mirror-symmetric, and there
      flips cost accuracy: ``success`` 0.41 with flips vs 0.57 without (500 steps, 5 x 20
      digits); set ``flip=False`` for such data.
    * Noise init ``N(0.5, init_std^2)`` clamped to [0, 1], ``init_std`` 0.25: the
      reference's ``N(0, 1)`` in ImageNet-normalised units is about ``N(0.45, 0.22^2)``
      in pixels.
    * Adaptive DeepInversion (the student-competition term) is not included: there is no
      student here.

    Arguments (keyword-only; see ``describe_params()``): ``iterations``, ``lr``, ``warmup``,
    ``batch_size``, ``r_feature``, ``first_bn_multiplier``, ``tv_l1``, ``tv_l2``, ``l2``,
    ``jitter``, ``flip``, ``init_std``.

    Shape:
        ``invert(access, labels, per_label)`` returns ``(len(labels) * per_label, C, H, W)``
        images in [0, 1] for any image shape the target accepts; ``scores`` are the target's
        softmax probability of each image's label.

    Example::

        attack = DeepInversion(iterations=300)
        access = WhiteBox(model, num_classes=5, image_shape=(1, 8, 8))
        rec = attack.invert(access, [0, 1], per_label=3, seed=0)
        rec.images.shape  # torch.Size([6, 1, 8, 8])
    """

    access: ClassVar[str] = "white-box"
    needs_public: ClassVar[bool] = False

    class Params(_Params):
        """DeepInversion's hyperparameters (reference-code defaults noted in each)."""

        iterations: int = Field(
            500, ge=1, description="Adam steps per batch (reference: 2000; paper: 20000)"
        )
        lr: float = Field(
            0.05, gt=0, description="Adam peak step in [0, 1] pixel units (reference: 0.2-0.25 "
            "in normalised units, about 0.05 in pixels)"
        )
        warmup: int = Field(
            20, ge=1, description="linear lr warm-up steps before the cosine decay "
            "(reference: 100)"
        )
        batch_size: int | None = Field(
            256, ge=1, description="images whose BN statistics are matched together "
            "(reference: 84-256); None: all requested images in one batch"
        )
        r_feature: float = Field(
            0.05, ge=0, description="weight of the BN-statistics loss (reference: 0.05; "
            "README example 0.01)"
        )
        first_bn_multiplier: float = Field(
            10.0, ge=0, description="extra weight of the first BN layer (reference: 10)"
        )
        tv_l1: float = Field(0.0, ge=0, description="weight of the L1 total variation "
                             "(reference: 0)")
        tv_l2: float = Field(
            1e-3, ge=0, description="weight of the per-image L2 total variation "
            "(reference: 1e-4 on a batch norm at 224 px)"
        )
        l2: float = Field(
            1e-3, ge=0, description="weight of the per-image L2 norm of the pixels "
            "(reference: 1e-5 in normalised units)"
        )
        jitter: int | None = Field(
            None, ge=0, description="max random roll in pixels; None: max(1, height // 16) "
            "(reference: 30 at 224 px, 2 at 32 px)"
        )
        flip: bool = Field(True, description="random horizontal flips (reference: on)")
        init_std: float = Field(
            0.25, gt=0, description="std of the N(0.5, std^2) noise the images start from"
        )

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        #: losses every LOG_EVERY steps of the last invert: dicts with chunk, step, ce, bn,
        #: tv_l1, tv_l2, l2 and the BN distance of each layer (``bn_layers``)
        self.history_: list[dict[str, object]] = []

    def _augment(self, height: int) -> Compose:
        p = self.params
        jitter = max(1, height // 16) if p.jitter is None else int(p.jitter)
        parts = [Jitter(jitter)]
        if p.flip:
            parts.append(RandomFlip(0.5, per_image=False))
        return Compose(parts)

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        if not isinstance(access, WhiteBox):
            raise AccessError(
                f"attack '{self.name}' needs white-box access (input gradients and the "
                f"target's BatchNorm statistics), got {access.level}"
            )
        p = self.params
        dev = access.device
        shape = access.image_shape
        n = labels.shape[0]
        stats = BNStatistics(access.model, first_bn_multiplier=p.first_bn_multiplier)
        augment = self._augment(shape[1])
        # round-robin order: labels arrive label-major (label repeated per_label times)
        order = _round_robin(labels)
        chunks = chunked(n, p.batch_size)
        images = torch.empty(n, *shape, device=dev)
        self.history_ = []
        total = p.iterations * len(chunks)
        done = reported = 0
        with progress_bar(total, self.name, quiet=quiet) as bar, stats:
            for c, sl in enumerate(chunks):
                idx = order[sl]
                lab = labels[idx]
                noise = torch.randn(len(idx), *shape, generator=generator, device=generator.device)
                x = (0.5 + p.init_std * noise.to(dev)).clamp_(0, 1).requires_grad_(True)
                opt = make_optimizer("adam", [x], lr=p.lr, betas=(0.5, 0.9))
                for step in range(p.iterations):
                    lr = _cosine_lr(p.lr, step, warmup=p.warmup, total=p.iterations)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    view = augment(x, generator=generator)
                    ce = F.cross_entropy(access.logits(view), lab)
                    bn = stats.loss()
                    tv1, tv2 = tv_losses(view)
                    l2 = torch.linalg.vector_norm(view.flatten(1), dim=1).mean()
                    loss = (ce + p.r_feature * bn + p.tv_l1 * tv1.mean() + p.tv_l2 * tv2.mean()
                            + p.l2 * l2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    with torch.no_grad():
                        x.clamp_(0, 1)
                    done += 1
                    last = step == p.iterations - 1
                    if step == 0 or (step + 1) % LOG_EVERY == 0 or last:
                        terms = {"ce": ce, "bn": bn, "tv_l1": tv1.mean(), "tv_l2": tv2.mean(),
                                 "l2": l2}
                        record: dict[str, object] = {"chunk": c, "step": step + 1}
                        record.update({k: float(v.detach()) for k, v in terms.items()})
                        record["bn_layers"] = [float(v.detach()) for v in stats.per_layer()]
                        self.history_.append(record)
                        if not quiet:
                            bar.update(ce=float(ce.detach()), bn=float(bn.detach()))
                        bar.advance(done - reported)
                        reported = done
                images[idx] = x.detach()
        with torch.inference_mode():
            scores = target_confidence(access.logits(images), labels)
        return Reconstruction(images=images, labels=labels, scores=scores)


def _round_robin(labels: Tensor) -> Tensor:
    """Indices that visit ``labels`` (B,) round-robin: the first entry of every label, then
    the second, ... (a stable order; labels listed label-major become interleaved).

    Example::

        >>> _round_robin(torch.tensor([3, 3, 3, 5, 5, 5])).tolist()
        [0, 3, 1, 4, 2, 5]
    """
    n = labels.shape[0]
    pos = torch.arange(n, device=labels.device)
    by_label = torch.argsort(labels, stable=True)
    _, counts = torch.unique_consecutive(labels[by_label], return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
    rank = torch.empty_like(pos)
    rank[by_label] = pos - starts  # rank of each entry among the entries with its label
    return torch.argsort(rank * n + pos)
