"""What every attack with a learned GAN prior shares (GMI, KEDMI, PLG-MI).

An attack of this family trains one or more networks on the public split in
:meth:`~invbench.attacks.base.Attack.prepare` (a WGAN-GP, KEDMI's semi-supervised GAN,
PLG-MI's conditional GAN), caches them by content, freezes them, and then searches the
prior's latent space in :meth:`~invbench.attacks.base.Attack.invert`. The scaffolding is the
same for all of them and lives here, so an attack file holds only its own logic:

- :class:`GANPriorParams`: the prior's shared hyperparameters (``latent_dim``,
  ``gan_steps``, ``gan_batch_size``, ``gan_lr``), the identity loss and LOMMA's plug-in
  parameters (:class:`~invbench.attacks.components.LommaParams`).
- :class:`GANPriorAttack`: the cache key (:meth:`~GANPriorAttack.prior_key_parts`: the
  public data's digest and size, the image shape, the prior's hyperparameters, the seed and,
  when the prior queried the target, the target's fingerprint), shape checks, reuse of an
  already prepared prior, freezing (``requires_grad_(False)``: inversion builds no graph for
  the prior's weights), LOMMA's model augmentation and the identity loss over target and
  surrogates.

A subclass sets :attr:`~GANPriorAttack.PRIOR_KIND`, :attr:`~GANPriorAttack.PRIOR_PARAMS`
and :attr:`~GANPriorAttack.USES_TARGET` and implements :meth:`~GANPriorAttack.build_prior`
(untrained modules) and :meth:`~GANPriorAttack.train_prior` (trains them in place, may query
the target through the access object).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access, WhiteBox
from invbench.attacks.base import Attack, ChunkParams
from invbench.attacks.components import (
    LommaParams,
    make_identity_loss,
    make_model_augmentation,
)
from invbench.errors import AccessError, ConfigError, DataError

if TYPE_CHECKING:
    from invbench.cache import Cache
    from invbench.data.protocol import Split


class GANPriorParams(LommaParams, ChunkParams):
    """Hyperparameters shared by attacks with a GAN prior (a subclass may change defaults)."""

    identity_loss: Literal["ce", "logit", "max-margin", "prob"] = Field(
        "ce", description="identity loss: 'ce', 'logit' (LOMMA), 'max-margin' (PLG-MI), 'prob'"
    )
    latent_dim: int = Field(100, ge=1, description="GAN latent dimension (papers: 100)")
    gan_steps: int = Field(1000, ge=1, description="generator steps of the prior's training")
    gan_batch_size: int = Field(64, ge=2, description="GAN mini-batch size (papers: 64)")
    gan_lr: float = Field(2e-4, gt=0, description="GAN Adam learning rate (papers: 2e-4)")


class GANPriorAttack(Attack):
    """Base of attacks that search the latent space of a GAN learned in prepare.

    Not registered itself; see :class:`~invbench.attacks.gmi.GMI`,
    :class:`~invbench.attacks.kedmi.KEDMI` and :class:`~invbench.attacks.plg_mi.PLGMI`.
    Threat model: white-box (input gradients of the target's logits), plus public images of
    other classes of the same domain.
    """

    access: ClassVar[str] = "white-box"
    needs_public: ClassVar[bool] = True

    #: names the prior's cache entry records (``"wgan-gp"``, ``"kedmi-gan"``, ``"cgan"``)
    PRIOR_KIND: ClassVar[str] = ""
    #: the ``Params`` fields that determine the prior (its cache key); the rest only the search
    PRIOR_PARAMS: ClassVar[tuple[str, ...]] = (
        "latent_dim", "gan_steps", "gan_batch_size", "gan_lr",
    )
    #: True when training the prior queries the target (its key then holds the target's)
    USES_TARGET: ClassVar[bool] = False
    #: latent searches are per image (a frozen prior in eval mode): invert may chunk them
    CHUNKS: ClassVar[str | None] = "image"

    Params = GANPriorParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._identity = make_identity_loss(self.params.identity_loss)
        #: LOMMA's model augmentation (``augment="lomma"``), prepared with the prior
        self.augmentation_ = make_model_augmentation(self.params)
        #: the prepared prior's networks by name (frozen, eval mode), or ``None``
        self.prior_modules_: dict[str, nn.Module] | None = None
        #: the prior's cache metadata (training losses, ``prepare_queries``)
        self.prior_meta_: dict[str, Any] | None = None
        #: what the prepared prior was trained from (its cache key parts), for audits
        self.prior_parts_: dict[str, object] | None = None

    # -- what a subclass provides -------------------------------------------------------

    @abstractmethod
    def build_prior(
        self, image_shape: tuple[int, int, int], *, num_classes: int
    ) -> dict[str, nn.Module]:
        """Untrained prior networks by name (raise :class:`ConfigError` for a bad shape)."""

    @abstractmethod
    def train_prior(
        self,
        modules: dict[str, nn.Module],
        public: Split,
        *,
        access: Access,
        seed: int,
        quiet: bool,
    ) -> dict[str, Any]:
        """Train ``modules`` in place on ``public`` (may query ``access``); return metadata."""

    # -- shared ---------------------------------------------------------------------------

    def check(self, *, image_shape: tuple[int, int, int]) -> None:
        """Refuse image shapes the prior cannot make (see ``models.SUPPORTED_HEIGHTS``)."""
        with torch.random.fork_rng(devices=[]):
            self.build_prior(tuple(image_shape), num_classes=2)  # type: ignore[arg-type]

    def cache_parts(self) -> dict[str, object]:
        """The hyperparameters that determine the prior (not the latent search)."""
        values = self.get_params()
        return {"attack": self.name, "prior": self.PRIOR_KIND,
                **{k: values[k] for k in self.PRIOR_PARAMS}}

    def prior_key_parts(
        self, public: Split, *, image_shape: tuple[int, int, int], seed: int
    ) -> dict[str, object]:
        """Everything that determines the prior trained by :meth:`prepare` (its cache key).

        With :attr:`USES_TARGET`, :meth:`~invbench.attacks.base.Attack.cached_prior` adds the
        target's fingerprint.
        """
        return {
            **self.cache_parts(),
            "public": public.digest(),
            "public_size": len(public),
            "image_shape": [int(s) for s in image_shape],
            "seed": int(seed),
        }

    def _prepare(
        self,
        public: Split | None,
        *,
        access: Access,
        cache: Cache | None,
        seed: int,
        quiet: bool,
    ) -> None:
        """Train (or load from ``cache``) the prior, freeze it, then prepare LOMMA if asked."""
        from invbench.data.protocol import Split

        assert isinstance(public, Split)  # checked by Attack.prepare (needs_public)
        shape = access.image_shape
        device = access.device
        parts = self.prior_key_parts(public, image_shape=shape, seed=seed)
        if self.USES_TARGET:
            parts["target"] = access.fingerprint()
        if self.prior_modules_ is None or self.prior_parts_ != parts:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(seed))
                modules = self.build_prior(shape, num_classes=access.num_classes)

            def create() -> dict[str, Any]:
                return self.train_prior(modules, public, access=access, seed=seed, quiet=quiet)

            meta = self.cached_prior(
                cache, access=access, kind="gan", parts=parts, modules=modules,
                create=create, uses_target=self.USES_TARGET,
            )
            self.prior_modules_ = {
                k: m.eval().requires_grad_(False) for k, m in modules.items()
            }
            self.prior_meta_ = dict(meta)
            self.prior_parts_ = parts
        # else: prepared on this very data with these settings (e.g. one attack object run
        # against several defended targets whose prior does not depend on them)
        for module in self.prior_modules_.values():
            module.to(device)
        if self.augmentation_ is not None:
            # LOMMA's surrogates are distilled from this target, so never skipped
            self.augmentation_.prepare(
                public.x, access=access, cache=cache, sampler=self.sample_prior, seed=seed,
                quiet=quiet, owner=self,
            )

    def sample_prior(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` images drawn from the prepared prior, ``(n, C, H, W)`` in [0, 1], no graph.

        Default: ``G(z)`` with ``z ~ N(0, I)`` drawn from ``generator`` (on its device), in
        chunks of 256. Used for LOMMA's ``prior_samples`` and to measure a prior's quality
        (``benchmarks/gan_priors.py``); a conditional prior overrides it.
        """
        G = self._prior_module("generator")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"sample_prior: n must be an int >= 1, got {n!r}")
        dev = next(G.parameters()).device
        z = torch.randn(n, self.params.latent_dim, generator=generator, device=generator.device)
        with torch.inference_mode():
            return torch.cat([G(c.to(dev)) for c in z.split(256)])

    @property
    def generator_(self) -> nn.Module | None:
        """The prepared generator (frozen), or ``None`` before :meth:`prepare`."""
        return None if self.prior_modules_ is None else self.prior_modules_["generator"]

    @property
    def discriminator_(self) -> nn.Module | None:
        """The prepared discriminator or critic (frozen), or ``None`` before :meth:`prepare`."""
        return None if self.prior_modules_ is None else self.prior_modules_["discriminator"]

    def _prior_module(self, name: str) -> nn.Module:
        if self.prior_modules_ is None:
            raise ConfigError(
                f"attack '{self.name}' has no GAN prior yet: call "
                "prepare(protocol.public, access=...) first"
            )
        return self.prior_modules_[name]

    def prior(self, access: Access) -> dict[str, nn.Module]:
        """The prepared prior on ``access.device`` in eval mode, after invert's checks.

        Raises :class:`AccessError` below the attack's access level, :class:`ConfigError` before
        :meth:`prepare`, :class:`DataError` when the prior's images do not fit the target.
        """
        if not Access.allows(access.level, self.access):
            raise AccessError(
                f"attack '{self.name}' needs {self.access} access, got {access.level}"
            )
        if self.prior_modules_ is None:
            raise ConfigError(
                f"attack '{self.name}' has no GAN prior yet: call "
                "prepare(protocol.public, access=...) before invert()"
            )
        made = self.prior_parts_.get("image_shape") if self.prior_parts_ else None
        if made is not None and tuple(made) != tuple(access.image_shape):
            raise DataError(
                f"attack '{self.name}': the GAN prior makes images of shape {tuple(made)}, "
                f"the target expects {access.image_shape}; prepare() with the target's shape"
            )
        return {k: m.to(access.device).eval() for k, m in self.prior_modules_.items()}

    def identity_loss(self, access: Access, images: Tensor, labels: Tensor) -> Tensor:
        """Per-sample identity loss ``(B,)``: on the target, or LOMMA's over target + surrogates.

        With ``augment="lomma"`` this is the mean of ``identity_loss`` over the target and the
        distilled surrogates plus ``p_reg_weight * ||phi(x) - p_reg||^2`` on the target's
        penultimate features (Nguyen et al. 2023).
        """
        aug = self.augmentation_
        if aug is None:
            return self._identity(access.logits(images), labels)
        if aug.uses_features and isinstance(access, WhiteBox):
            # one target pass gives both the logits and p_reg's features
            logits, feats = access.logits_and_features(images)
        else:
            logits, feats = access.logits(images), None
        return aug.identity(self._identity, images, labels, logits) + aug.feature_reg(
            access, images, features=feats
        )


#: parameters that determine the public WGAN-GP prior (and so its cache key)
WGAN_PRIOR_PARAMS: tuple[str, ...] = (
    "latent_dim", "gan_steps", "gan_batch_size", "gan_lr", "n_critic", "gp_weight",
)


class WGANPriorParams(GANPriorParams):
    """The public WGAN-GP prior's hyperparameters (GMI's; shared by every attack using it)."""

    gan_steps: int = Field(1000, ge=1, description="WGAN-GP generator steps on the public data")
    n_critic: int = Field(5, ge=1, description="critic steps per generator step (paper: 5)")
    gp_weight: float = Field(10.0, ge=0, description="WGAN-GP gradient penalty weight")


class WGANPriorAttack(GANPriorAttack):
    """Base of attacks whose prior is GMI's WGAN-GP trained on the public data alone.

    The prior never queries the target, so one trained prior serves every target and every
    attack of this family: its cache entry lives in the shared view ``prior-wgan-gp`` under
    a key without the attack's name (the public data, image shape, the parameters in
    :data:`WGAN_PRIOR_PARAMS` and the seed). GMI (white-box) and the black-box and
    label-only latent searches (Mirror, BREP-MI, RLB-MI, C2FMI) subclass it and implement
    only their search in ``_invert`` (``self.prior(access)`` gives the frozen
    ``generator`` and ``discriminator``).
    """

    PRIOR_KIND: ClassVar[str] = "wgan-gp"
    PRIOR_PARAMS: ClassVar[tuple[str, ...]] = WGAN_PRIOR_PARAMS
    USES_TARGET: ClassVar[bool] = False
    CACHE_OWNER: ClassVar[str | None] = "prior-wgan-gp"

    Params = WGANPriorParams

    def cache_parts(self) -> dict[str, object]:
        """The prior's hyperparameters, without the attack's name (the prior is shared)."""
        values = self.get_params()
        return {"prior": self.PRIOR_KIND, **{k: values[k] for k in self.PRIOR_PARAMS}}

    def build_prior(
        self, image_shape: tuple[int, int, int], *, num_classes: int
    ) -> dict[str, nn.Module]:
        """An untrained DCGAN generator and WGAN-GP critic (:func:`invbench.models.make_gan`)."""
        from invbench.models import make_gan

        generator, critic = make_gan(image_shape, latent_dim=self.params.latent_dim)
        return {"generator": generator, "discriminator": critic}

    def train_prior(
        self,
        modules: dict[str, nn.Module],
        public: Split,
        *,
        access: Access,
        seed: int,
        quiet: bool,
    ) -> dict[str, Any]:
        """WGAN-GP on the public images only: the target is never queried (a shared prior)."""
        from invbench.training import train_wgan_gp

        p = self.params
        losses = train_wgan_gp(
            modules["generator"], modules["discriminator"], public.x, steps=p.gan_steps,
            batch_size=p.gan_batch_size, lr=p.gan_lr, n_critic=p.n_critic,
            gp_weight=p.gp_weight, seed=int(seed), device=access.device, quiet=quiet,
            desc=f"{self.name}: train GAN prior",
        )
        return {"losses": {k: float(v) for k, v in losses.items()}}
