"""LOMMA's model augmentation: an identity loss averaged over the target and its surrogates.

Paper: N.-B. Nguyen, K. Chandrasegaran, M. Abdollahzadeh, N.-M. Cheung, "Re-thinking
Model Inversion Attacks Against Deep Neural Networks", CVPR 2023,
https://arxiv.org/abs/2304.01669 (LOMMA: Logit loss and Model Augmentation). Reference
code: github.com/sutd-visual-computing-group/Re-thinking_MI (``train_augmented_model.py``,
``engine.train_augmodel``, ``attack.iden_loss``/``reg_loss``, ``utils.get_attack_model``).

LOMMA is a plug-in for GAN-based white-box attacks (GMI, KEDMI). It makes two changes to
the identity term of the latent search:

1. **Model augmentation.** Before inversion, ``count`` surrogate classifiers are distilled
   from the target's soft labels on the public images (Hinton et al. 2015 distillation,
   :func:`invbench.training.distill.distill_classifier`). During inversion the identity
   loss is the mean over the target and every surrogate,
   ``(1 / (1 + M)) * (L(f(x), y) + sum_m L(f_m(x), y))``, so reconstructions must convince
   models of several architectures rather than overfit the target's quirks
   (:meth:`ModelAugmentation.identity`).
2. **Feature regulariser.** With the logit loss, ``lambda * ||phi(x) - p_reg||^2`` is
   added, where ``phi`` is the target's penultimate layer and ``p_reg`` the mean of
   ``phi`` over the public images, computed once in :meth:`ModelAugmentation.prepare`. It
   keeps the unbounded logit loss from pushing features off the data manifold
   (:meth:`ModelAugmentation.feature_reg`). As in the reference code it uses the target
   only, and one centre for every class (the public mean, not a per-class centre).

Threat model: the surrogates need the target's probability vectors on public images
(white-box or black-box access; the queries count as the attack's ``prepare`` queries and
against its budget, also when the surrogates are loaded from the cache). The feature
regulariser needs white-box access (the target's ``features``).

How an attack uses it (GMI and KEDMI declare :class:`LommaParams` in their ``Params``)::

    aug = make_model_augmentation(self.params)             # None when augment == "none"
    # in _prepare, after the GAN prior exists:
    aug.prepare(public.x, access=access, cache=cache, sampler=None, seed=seed,
                quiet=quiet, owner=self)
    # in the loss of every optimisation step:
    logits = access.logits(fake)
    identity = aug.identity(self._id_loss, fake, lab, logits) + aug.feature_reg(access, fake)

The paper's ablations are configurations: ``surrogates=0`` with ``identity_loss="logit"``
is "L_logit" (logit loss and ``p_reg``, no surrogates); ``p_reg_weight=0`` with
``identity_loss="ce"`` is "L_aug"; ``identity_loss="logit"`` with both is LOMMA ("ours").

Defaults that differ from the paper, and why:

* Surrogate architectures: the paper distils three ImageNet-pretrained EfficientNets
  (B0, B1, B2) of the 64 px face target. There are no pretrained weights here (no
  downloads), so surrogates are small networks trained from scratch, of a family that is
  neither a target nor an evaluator family: ``mobile`` (MobileNet-style,
  https://arxiv.org/abs/1704.04861) by default, ``squeeze`` (SqueezeNet-style,
  https://arxiv.org/abs/1602.07360), or ``mixed`` (surrogate ``i`` alternates the two,
  closer to the paper's three different networks, about 2x slower on CPU). ``count`` 3 is
  the paper's.
* Distillation learning rate 0.05 (reference config 0.01, on pretrained students; its
  released checkpoints are named with 0.02): students trained from scratch on about
  900 digits agree more with the target with the larger step (measured on digits 8x8,
  20 epochs: held-out public agreement 0.89 at 0.05 vs 0.84 at 0.01, chance 0.52).
  Epochs 20, batch 64, temperature 1, SGD momentum 0.9 and weight decay 1e-4 are the
  reference's. The distillation loss is multiplied by ``T^2`` (Hinton et al.); the
  reference divides by it; both are the same at its ``T = 1``.
* Soft labels are queried once per public image and reused every epoch (the reference
  re-queries the same un-augmented images every epoch: the same numbers for a
  deterministic target, ``epochs`` times fewer queries).
* ``p_reg`` is the mean target feature over all public images (the reference uses about
  the first 5,000); its weight 1 is the reference's ``lam``. The regulariser is a
  per-sample mean over feature dimensions, i.e. the reference's batch mean taken per
  sample, since attacks here sum per-sample losses.
* ``prior_samples`` (default 0, as in the reference, which distils on public images only)
  optionally adds that many samples of the attack's prior (e.g. ``G(z)``) to the
  distillation set, so surrogates also agree with the target where the search looks.

Shape:
    ``identity`` and ``feature_reg`` map images ``(B, C, H, W)`` in [0, 1] (and target
    logits ``(B, K)``, labels ``(B,)``) to per-sample losses ``(B,)``, differentiable with
    respect to the images; the surrogates and ``p_reg`` are frozen.

Example::

    aug = ModelAugmentation(count=3, epochs=20)
    aug.prepare(public.x, access=access, cache=None, sampler=None, seed=0, quiet=True,
                owner=attack)
    loss = aug.identity(LogitIdentity(), x, y, access.logits(x)) + aug.feature_reg(access, x)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access, WhiteBox
from invbench.attacks.components.batching import QUERY_CHUNK, query_probs
from invbench.attacks.components.losses import IdentityLoss
from invbench.data.protocol import check_images
from invbench.errors import AccessError, ConfigError, DataError
from invbench.params import Params as _Params

if TYPE_CHECKING:
    from invbench.attacks.base import Attack
    from invbench.cache import Cache
    from invbench.models import Classifier

#: a sampler of the attack's prior: (n, generator) -> images (n, C, H, W) in [0, 1]
PriorSampler = Callable[[int, torch.Generator], Tensor]

#: surrogate architecture choices: one family, or ``mixed`` (alternating the families)
SURROGATE_CHOICES: tuple[str, ...] = ("mobile", "squeeze", "mixed")

#: the :class:`LommaParams` fields that determine the surrogates (and so their cache key)
LOMMA_PARAMS: tuple[str, ...] = (
    "surrogates", "surrogate_arch", "distill_epochs", "distill_lr", "distill_batch_size",
    "distill_temperature", "p_reg_weight", "prior_samples",
)


class LommaParams(_Params):
    """LOMMA's parameters, declared once for every attack that offers it (GMI, KEDMI).

    Use as the base of an attack's ``Params``: ``class Params(LommaParams): ...``; build
    the component with :func:`make_model_augmentation`.
    """

    augment: Literal["none", "lomma"] = Field(
        "none", description="model augmentation of the identity loss: 'none' (paper), "
        "'lomma' (Nguyen et al. 2023)"
    )
    surrogates: int = Field(
        3, ge=0, description="LOMMA: surrogates distilled from the target (paper: 3)"
    )
    surrogate_arch: Literal["mobile", "squeeze", "mixed"] = Field(
        "mobile", description="LOMMA: surrogate family; 'mixed' alternates mobile and squeeze "
        "(paper: EfficientNet-B0/B1/B2, pretrained)"
    )
    distill_epochs: int = Field(
        20, ge=1, description="LOMMA: distillation epochs over the public images (paper: 20)"
    )
    distill_lr: float = Field(
        0.05, gt=0, description="LOMMA: distillation SGD step (paper: 0.01, pretrained students)"
    )
    distill_batch_size: int = Field(
        64, ge=2, description="LOMMA: distillation mini-batch size (paper: 64)"
    )
    distill_temperature: float = Field(
        1.0, gt=0, description="LOMMA: distillation softmax temperature (paper: 1)"
    )
    p_reg_weight: float = Field(
        1.0, ge=0, description="LOMMA: weight of ||phi(x) - p_reg||^2, the target's features "
        "vs their public mean (paper: 1)"
    )
    prior_samples: int = Field(
        0, ge=0, description="LOMMA: prior samples added to the distillation set (paper: 0)"
    )


def make_model_augmentation(params: _Params) -> ModelAugmentation | None:
    """The :class:`ModelAugmentation` an attack's :class:`LommaParams` ask for, or ``None``.

    ``None`` when ``params.augment == "none"``.
    """
    if getattr(params, "augment", "none") == "none":
        return None
    p: Any = params
    return ModelAugmentation(
        arch=p.surrogate_arch, count=p.surrogates, epochs=p.distill_epochs, lr=p.distill_lr,
        batch_size=p.distill_batch_size, temperature=p.distill_temperature,
        p_reg_weight=p.p_reg_weight, prior_samples=p.prior_samples,
    )


class _Centre(nn.Module):
    """Holds ``p_reg`` (feat_dim,) as a buffer, so the cache stores it with the surrogates."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("centre", torch.zeros(dim))


def _digest(t: Tensor) -> str:
    h = hashlib.sha256()
    t = t.detach().contiguous().cpu()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()


def _check_count(name: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"ModelAugmentation: {name} must be an int >= {low}, got {value!r}")
    return value


def _check_number(name: str, value: object, *, positive: bool) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not (value > 0 if positive else value >= 0):  # type: ignore[operator]
        what = "> 0" if positive else ">= 0"
        raise ConfigError(f"ModelAugmentation: {name} must be a number {what}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


class ModelAugmentation:
    """LOMMA's surrogates and feature centre for one target (see the module docstring).

    Arguments (keyword-only):
        arch: ``"mobile"`` (default), ``"squeeze"`` or ``"mixed"`` (alternating).
        count: number of surrogates (>= 0; paper 3). 0 keeps only the feature regulariser.
        epochs, lr, batch_size, temperature, momentum, weight_decay: distillation settings
            (:func:`~invbench.training.distill.distill_classifier`).
        p_reg_weight: weight of the feature regulariser (>= 0; paper 1; 0 turns it off).
        prior_samples: samples of the attack's prior added to the distillation set (>= 0).

    Attributes (after :meth:`prepare`):
        surrogates_: the distilled surrogates, frozen (eval, ``requires_grad`` False), on
            the target's device.
        p_reg_: the target's mean public feature (feat_dim,) or ``None`` when the weight is 0.
        meta_: the cache entry's metadata (distillation losses, agreement with the target
            on the distillation images, queries).
    """

    def __init__(
        self,
        *,
        arch: str = "mobile",
        count: int = 3,
        epochs: int = 20,
        lr: float = 0.05,
        batch_size: int = 64,
        temperature: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        p_reg_weight: float = 1.0,
        prior_samples: int = 0,
    ) -> None:
        if arch not in SURROGATE_CHOICES:
            raise ConfigError(
                f"ModelAugmentation: arch must be one of {', '.join(SURROGATE_CHOICES)}, "
                f"got {arch!r}"
            )
        self.arch = arch
        self.count = _check_count("count", count, low=0)
        self.epochs = _check_count("epochs", epochs, low=1)
        self.batch_size = _check_count("batch_size", batch_size, low=2)
        self.prior_samples = _check_count("prior_samples", prior_samples, low=0)
        self.lr = _check_number("lr", lr, positive=True)
        self.temperature = _check_number("temperature", temperature, positive=True)
        self.weight_decay = _check_number("weight_decay", weight_decay, positive=False)
        self.p_reg_weight = _check_number("p_reg_weight", p_reg_weight, positive=False)
        self.momentum = _check_number("momentum", momentum, positive=False)
        if self.momentum >= 1:
            raise ConfigError(f"ModelAugmentation: momentum must be < 1, got {momentum!r}")
        self.surrogates_: list[Classifier] = []
        self.p_reg_: Tensor | None = None
        self.meta_: dict[str, Any] | None = None
        self._prepared_for: tuple[dict[str, Any], str] | None = None

    def __repr__(self) -> str:
        return (
            f"ModelAugmentation(arch={self.arch!r}, count={self.count}, epochs={self.epochs}, "
            f"lr={self.lr}, batch_size={self.batch_size}, temperature={self.temperature}, "
            f"p_reg_weight={self.p_reg_weight}, prior_samples={self.prior_samples})"
        )

    def archs(self) -> list[str]:
        """The architecture of each surrogate, in order (``mixed`` alternates the families)."""
        from invbench.models.classifiers import SURROGATE_ARCHS

        if self.arch == "mixed":
            return [SURROGATE_ARCHS[i % len(SURROGATE_ARCHS)] for i in range(self.count)]
        return [self.arch] * self.count

    def settings(self) -> dict[str, Any]:
        """The hyperparameters that determine the surrogates and ``p_reg`` (cache key parts)."""
        return {
            "arch": self.arch, "count": self.count, "epochs": self.epochs, "lr": self.lr,
            "batch_size": self.batch_size, "temperature": self.temperature,
            "momentum": self.momentum, "weight_decay": self.weight_decay,
            "p_reg": self.p_reg_weight > 0, "prior_samples": self.prior_samples,
        }

    # ------------------------------------------------------------------ prepare

    def _check_access(self, access: Access) -> None:
        if self.count > 0 and access.level not in ("white-box", "black-box"):
            raise AccessError(
                "LOMMA distils surrogates from the target's probability vectors, which "
                f"{access.level} access does not give; use surrogates=0 or a stronger access"
            )
        if self.p_reg_weight > 0:
            model = getattr(access, "model", None)
            if not isinstance(access, WhiteBox) or not callable(getattr(model, "features", None)):
                raise AccessError(
                    "LOMMA's feature regulariser needs white-box access to a target with "
                    f"features(x), got {access.level}; set p_reg_weight=0 to go without it"
                )

    def prepare(
        self,
        public_x: Tensor,
        *,
        access: Access,
        cache: Cache | None,
        sampler: PriorSampler | None,
        seed: int,
        quiet: bool,
        owner: Attack,
    ) -> None:
        """Distil the surrogates and estimate ``p_reg`` (or load both from ``cache``).

        The target is queried through ``access`` once per public image (and per prior
        sample): its probability vectors are the distillation targets; with a positive
        ``p_reg_weight`` its penultimate features of the same public images (read from the
        same white-box target, not counted again) give ``p_reg``. The result is cached with
        ``owner.cached_prior(..., kind="lomma", uses_target=True)``, so it is per target and
        a warm run charges the same queries. Calling it again with the same data, settings,
        seed and target does nothing.

        Args:
            public_x: public images (N, C, H, W) in [0, 1], N >= 2, of the target's shape.
            access: the target (white-box, or black-box when ``p_reg_weight`` is 0).
            cache: the owner's cache view, or ``None``.
            sampler: the attack's prior as ``(n, generator) -> images``, needed only when
                ``prior_samples`` > 0 (its samples are hashed into the cache key).
            seed: seeds the surrogates' initial weights, their batch orders and the prior
                samples.
            quiet: hide progress bars.
            owner: the attack (its :meth:`~invbench.attacks.base.Attack.cached_prior`).

        Raises:
            AccessError: label-only access with surrogates, or no white-box features for
                ``p_reg``.
            DataError: public images that are malformed, fewer than 2, or of another shape
                than the target's; prior samples of the wrong shape.
            ConfigError: ``prior_samples`` > 0 without a ``sampler``.
        """
        from invbench.models import make_classifier
        from invbench.training.distill import distill_classifier

        self._check_access(access)
        check_images(public_x, what="LOMMA public images")
        shape = access.image_shape
        if tuple(public_x.shape[1:]) != shape:
            raise DataError(
                f"LOMMA: public images are {tuple(public_x.shape[1:])}, the target expects {shape}"
            )
        if public_x.shape[0] < 2:
            raise DataError(f"LOMMA: need at least 2 public images, got {public_x.shape[0]}")
        dev = access.device
        seed = int(seed)
        prior_x: Tensor | None = None
        if self.prior_samples > 0 and self.count > 0:
            if sampler is None:
                raise ConfigError(
                    f"LOMMA: prior_samples={self.prior_samples} needs the attack's prior "
                    "sampler; pass sampler= or set prior_samples=0"
                )
            gen = torch.Generator(device=dev).manual_seed(seed)
            with torch.inference_mode():
                prior_x = sampler(self.prior_samples, gen).detach().to(dev).clone()
            check_images(prior_x, what="LOMMA prior samples")
            if tuple(prior_x.shape) != (self.prior_samples, *shape):
                raise DataError(
                    f"LOMMA: the prior sampler gave {tuple(prior_x.shape)}, expected "
                    f"({self.prior_samples}, {', '.join(map(str, shape))})"
                )
        parts = {
            "method": "lomma", **self.settings(), "public": _digest(public_x),
            "public_size": int(public_x.shape[0]), "prior": None if prior_x is None
            else _digest(prior_x), "image_shape": list(shape),
            "num_classes": access.num_classes, "seed": seed,
        }
        memo = (parts, access.fingerprint())
        if self._prepared_for == memo:
            for s in self.surrogates_:
                s.to(dev)
            return

        archs = self.archs()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            surrogates = [
                make_classifier(a, image_shape=shape, num_classes=access.num_classes)
                for a in archs
            ]
        modules: dict[str, nn.Module] = {f"surrogate{i}": s for i, s in enumerate(surrogates)}
        centre: _Centre | None = None
        if self.p_reg_weight > 0:
            target = access.model  # type: ignore[attr-defined]  # checked: white-box
            dim = getattr(target, "feat_dim", None)
            if not isinstance(dim, int):
                with torch.inference_mode():
                    dim = int(target.features(public_x[:1].to(dev)).shape[1])
            centre = _Centre(int(dim))
            modules["p_reg"] = centre
        if not modules:  # count 0 and no regulariser: nothing to learn, nothing to query
            self.surrogates_, self.p_reg_, self.meta_ = [], None, {"prepare_queries": 0}
            self._prepared_for = memo
            return

        def create() -> dict[str, Any]:
            x = public_x.to(dev)
            meta: dict[str, Any] = {"archs": archs}
            queried = False
            if surrogates:
                xs = x if prior_x is None else torch.cat([x, prior_x])
                probs = query_probs(access, xs)
                queried = True
                losses, agree = [], []
                for i, (arch, s) in enumerate(zip(archs, surrogates, strict=True)):
                    out = distill_classifier(
                        s, xs, probs, epochs=self.epochs, batch_size=self.batch_size,
                        lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                        temperature=self.temperature, seed=seed + i, device=dev, quiet=quiet,
                        desc=f"{owner.name}: LOMMA distil {arch} ({i + 1}/{len(archs)})",
                    )
                    losses.append(out["loss"])
                    with torch.inference_mode():
                        pred = torch.cat([s(xs[j : j + QUERY_CHUNK]).argmax(1)
                                          for j in range(0, xs.shape[0], QUERY_CHUNK)])
                        agree.append(float((pred == probs.argmax(1)).float().mean()))
                meta.update(distill_loss=losses, train_agreement=agree,
                            distill_images=int(xs.shape[0]))
            if centre is not None:
                target = access.model  # type: ignore[attr-defined]
                if not queried:  # the features are this stage's only reads of the target
                    access.charge(int(x.shape[0]))
                with torch.inference_mode():
                    feats = torch.cat([target.features(x[i : i + QUERY_CHUNK]).float()
                                       for i in range(0, x.shape[0], QUERY_CHUNK)])
                centre.centre.copy_(feats.mean(0))
                meta["p_reg_norm"] = float(centre.centre.norm())
            return meta

        meta = owner.cached_prior(
            cache, access=access, kind="lomma", parts=parts, modules=modules, create=create,
            uses_target=True,
        )
        self.surrogates_ = [s.to(dev).eval().requires_grad_(False) for s in surrogates]
        self.p_reg_ = None if centre is None else centre.centre.detach().to(dev)
        self.meta_ = dict(meta)
        self._prepared_for = memo

    # ------------------------------------------------------------------ inversion

    def _check_prepared(self) -> None:
        if self._prepared_for is None:
            raise ConfigError(
                "LOMMA has no surrogates yet: call prepare(public_x, access=..., ...) "
                "before inverting"
            )

    def identity(
        self, loss: IdentityLoss, images: Tensor, labels: Tensor, target_logits: Tensor
    ) -> Tensor:
        """Per-sample identity loss ``(B,)`` averaged over the target and every surrogate.

        ``target_logits`` are the target's logits of ``images`` (the attack's counted
        query); each surrogate sees ``images`` itself (no query). Differentiable with
        respect to ``images`` through the target's logits and the frozen surrogates.
        """
        self._check_prepared()
        total = loss(target_logits, labels)
        for s in self.surrogates_:
            total = total + loss(s(images), labels)
        return total / (1 + len(self.surrogates_))

    @property
    def uses_features(self) -> bool:
        """Whether :meth:`feature_reg` needs the target's features (``p_reg_weight > 0``)."""
        return self.p_reg_weight != 0

    def feature_reg(
        self, access: Access, images: Tensor, *, features: Tensor | None = None
    ) -> Tensor:
        """LOMMA's ``p_reg_weight * mean_d (phi(x)_d - p_reg_d)^2`` per sample, ``(B,)``.

        ``phi`` is the white-box target's penultimate layer (``access.model.features``),
        read on images the attack queries through ``access.logits`` in the same step, so
        no query is counted here. Pass ``features`` when the attack already has them from
        its forward pass (:meth:`~invbench.access.WhiteBox.logits_and_features`): then no
        second pass runs. Zeros (no forward pass) when the weight is 0. Add it to the
        identity term, inside the attack's ``lambda_id``, as the reference does.
        """
        self._check_prepared()
        if self.p_reg_weight == 0 or self.p_reg_ is None:
            return images.new_zeros(images.shape[0])
        if not isinstance(access, WhiteBox):
            raise AccessError(
                f"LOMMA's feature regulariser needs white-box access, got {access.level}"
            )
        feats = access.model.features(images) if features is None else features  # type: ignore[operator]
        return self.p_reg_weight * (feats - self.p_reg_).pow(2).mean(1)
