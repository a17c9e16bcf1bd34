"""The attack interface.

An attack is a :class:`~invbench.params.Configurable` with a class attribute ``access``
(the weakest access it needs: ``"white-box"``, ``"black-box"`` or ``"label-only"``), an
optional :meth:`Attack._prepare` that learns priors from public data and, where the attack's
paper does, from queries to the target through the same access object ``invert`` gets, and
one abstract method, :meth:`Attack._invert`. The public :meth:`Attack.prepare` and
:meth:`Attack.invert` do the chores: check the access level and the public data, count the
queries of each stage, expand labels by ``per_label``, seed, validate the output.

Queries: a reconstruction's ``queries`` counts :meth:`invert` only; :attr:`prepare_queries_`
counts :meth:`prepare` (stored with a cached prior, so a warm cache reports the same number
and charges the same budget). One access object, and so one budget, covers both.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.access import LEVELS, Access
from invbench.errors import AccessError, ConfigError, DataError
from invbench.params import Configurable, Params
from invbench.types import Reconstruction, UpdateInference

if TYPE_CHECKING:
    from invbench.cache import Cache
    from invbench.data.protocol import Split
    from invbench.training.update import UpdateRecipe


class ChunkParams(Params):
    """``batch_size``: the most rows an attack optimises at once (use as a ``Params`` base).

    A row is one optimised start: a requested image times its restarts (and, for attacks
    that average over augmented views, times its views). With ``batch_size`` set,
    :meth:`Attack.invert` splits a large request into consecutive chunks of
    ``max(1, batch_size // rows_per_image)`` images and inverts them one after another, so
    ``labels x per_label x restarts`` never has to fit in memory at once. For attacks whose
    losses are per sample (``CHUNKS = "image"``) a chunk optimises the same objective as the
    whole batch; only the order in which random starts are drawn differs, so results depend
    on ``batch_size`` only through the random stream.
    """

    batch_size: int | None = Field(
        None, ge=1,
        description="most rows (images x restarts) optimised at once; None: all in one batch",
    )


class AttackBase(Configurable):
    """What every attack shares: access level, public data, priors, cache, query counting.

    Subclass :class:`Attack` (reconstruct what a class looks like) or :class:`UpdateAttack`
    (reconstruct the data of a deployed model's update).
    """

    kind: ClassVar[str] = "attack"
    access: ClassVar[str] = "white-box"
    #: True when :meth:`prepare` must see public data (GAN priors and the like).
    needs_public: ClassVar[bool] = False
    #: ``"image"``: the attack's losses are per image, so :meth:`invert` may split a request
    #: into chunks of images when ``params.batch_size`` is set (see :class:`ChunkParams`);
    #: ``None``: the attack has no ``batch_size`` or handles it itself (DeepInversion's BN
    #: statistics and KEDMI's per-label distributions are per batch)
    CHUNKS: ClassVar[str | None] = None

    #: the cache view the runner hands :meth:`prepare` (``None``: ``attack-<name>``); attacks
    #: sharing a prior that never saw the target share a view (``prior-wgan-gp``)
    CACHE_OWNER: ClassVar[str | None] = None

    #: target queries spent by the last :meth:`prepare` (from the cache's record when loaded)
    prepare_queries_: int = 0

    def cache_owner(self) -> str:
        """The name of the cache view this attack's entries live in."""
        return self.CACHE_OWNER or f"attack-{self.name}"

    def check(self, *, image_shape: tuple[int, int, int]) -> None:
        """Raise a one-line :class:`ConfigError` if the attack cannot run on ``image_shape``.

        Called by the runner before any work (default: every shape is fine). An attack whose
        prior supports only some resolutions (a GAN) overrides it.
        """

    def _check_access(self, access: object) -> Access:
        if not isinstance(access, Access):
            raise AccessError(
                f"attack '{self.name}' needs a {self.access} access object, "
                f"got {type(access).__name__}"
            )
        if not Access.allows(access.level, self.access):
            raise AccessError(
                f"attack '{self.name}' needs {self.access} access, but was given "
                f"{access.level} (order of strength: {' > '.join(LEVELS)})"
            )
        return access

    def prepare(
        self,
        public: Split | None,
        *,
        access: Access,
        cache: Cache | None = None,
        seed: int = 0,
        quiet: bool = True,
    ) -> None:
        """Learn the attack's priors (default: nothing to learn).

        Arguments:
            public: the protocol's public split (classes disjoint from the private ones);
                required when :attr:`needs_public`, its images must match the target's shape.
            access: the target, as the threat model allows (the same object ``invert`` gets);
                the image shape and device come from it. Queries made here count in
                :attr:`prepare_queries_` and against the access's budget.
            cache: the attack's own cache (a :class:`~invbench.cache.CacheView` from the
                runner) for priors, or ``None`` to train every time.
            seed: seeds everything the preparation draws.
            quiet: hide progress bars.
        """
        from invbench.data.protocol import Split, check_images

        access = self._check_access(access)
        if self.needs_public:
            if not isinstance(public, Split):
                raise DataError(
                    f"attack '{self.name}' prepare: public must be a Split, got "
                    f"{type(public).__name__}"
                )
            check_images(public.x, what=f"attack '{self.name}' public data")
            if tuple(public.x.shape[1:]) != access.image_shape:
                raise DataError(
                    f"attack '{self.name}' prepare: public images are "
                    f"{tuple(public.x.shape[1:])}, the target expects {access.image_shape}"
                )
        q0 = access.queries
        self._prepare(public, access=access, cache=cache, seed=int(seed), quiet=quiet)
        self.prepare_queries_ = access.queries - q0

    def _prepare(
        self,
        public: Split | None,
        *,
        access: Access,
        cache: Cache | None,
        seed: int,
        quiet: bool,
    ) -> None:
        """Learn priors (override); ``public`` and ``access`` are already checked."""

    def cached_prior(
        self,
        cache: Cache | None,
        *,
        access: Access,
        kind: str,
        parts: Mapping[str, Any],
        modules: Mapping[str, nn.Module],
        create: Callable[[], Mapping[str, Any] | None],
        uses_target: bool,
    ) -> dict[str, Any]:
        """Load ``modules`` from ``cache`` or build them with ``create()``; count its queries.

        ``create()`` trains ``modules`` in place and may query the target through ``access``.
        With ``uses_target`` the target's :meth:`~invbench.access.Access.fingerprint` joins
        the key, so a prior learned from one target is never reused for another (a prior
        learned from public data alone stays shared). The queries ``create()`` made are stored
        in the entry's sidecar as ``prepare_queries``; on a cache hit the access is charged
        that many, so :attr:`prepare_queries_` and the budget are the same warm or cold (the
        cache also records the training time, ``build_seconds``).
        Returns the entry's metadata.
        """
        key_parts = dict(parts)
        if uses_target:
            key_parts["target"] = access.fingerprint()
        q0 = access.queries

        def counted() -> dict[str, Any]:
            extra = dict(create() or {})
            extra["prepare_queries"] = access.queries - q0
            return extra

        if cache is None:
            return counted()
        meta, hit = cache.get_or_create(kind, key_parts, modules, counted)
        if hit:
            access.charge(int(meta.get("prepare_queries", 0)))
        return dict(meta)



class Attack(AttackBase):
    """Base class of model inversion attacks (one subclass per file in ``attacks/``)."""

    @abstractmethod
    def _invert(
        self, access: Access, labels: Tensor, *, generator: torch.Generator, quiet: bool
    ) -> Reconstruction:
        """Reconstruct one image per entry of ``labels`` (on ``access.device``)."""

    def invert(
        self,
        access: Access,
        labels: list[int] | Tensor,
        per_label: int = 1,
        *,
        seed: int = 0,
        quiet: bool = True,
    ) -> Reconstruction:
        """Reconstruct ``per_label`` images for each target label in ``labels``."""
        self._check_access(access)
        lab = torch.as_tensor(labels, dtype=torch.long).flatten()
        if lab.numel() == 0:
            raise ConfigError("labels: give at least one target label to invert")
        if per_label < 1:
            raise ConfigError(f"per_label must be >= 1, got {per_label}")
        bad = [int(v) for v in lab if not 0 <= int(v) < access.num_classes]
        if bad:
            raise ConfigError(
                f"labels {bad} out of range: the target has {access.num_classes} classes"
            )
        lab = lab.repeat_interleave(per_label).to(access.device)
        gen = torch.Generator(device=access.device).manual_seed(int(seed))
        q0 = access.queries
        rec = self._invert_chunks(access, lab, generator=gen, quiet=quiet)
        imgs = rec.images.detach().float().cpu()
        if imgs.shape[0] != lab.numel() or tuple(imgs.shape[1:]) != access.image_shape:
            raise RuntimeError(
                f"attack '{self.name}' returned images of shape {tuple(imgs.shape)}, "
                f"expected ({lab.numel()}, {', '.join(map(str, access.image_shape))})"
            )
        if not torch.isfinite(imgs).all():
            raise RuntimeError(f"attack '{self.name}' produced NaN/Inf images")
        return Reconstruction(
            images=imgs.clamp(0, 1),
            labels=rec.labels.detach().long().cpu(),
            scores=rec.scores.detach().float().cpu(),
            queries=access.queries - q0,
        )

    def rows_per_image(self) -> int:
        """Rows optimised together per requested image (``restarts``, default 1)."""
        return int(getattr(self.params, "restarts", 1))

    def _invert_chunks(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                       quiet: bool) -> Reconstruction:
        """:meth:`_invert` on all of ``labels``, or chunk by chunk (see :class:`ChunkParams`)."""
        batch_size = getattr(self.params, "batch_size", None)
        rows = self.rows_per_image()
        if self.CHUNKS != "image" or batch_size is None or labels.numel() * rows <= batch_size:
            return self._invert(access, labels, generator=generator, quiet=quiet)
        parts = [
            self._invert(access, chunk, generator=generator, quiet=quiet)
            for chunk in labels.split(max(1, int(batch_size) // rows))
        ]
        return Reconstruction(
            images=torch.cat([r.images for r in parts]),
            labels=torch.cat([r.labels for r in parts]),
            scores=torch.cat([r.scores for r in parts]),
        )


class UpdateAttack(AttackBase):
    """Base class of attacks on a model's *updates* (Updates-Leak, Salem et al. 2020).

    The target is an online-learning deployment: the model as first deployed (version 0)
    and its versions after each of ``access.versions - 1`` updates, each the original model
    fine-tuned on a small private *update set*
    (:class:`~invbench.serving.service.TargetService` ``updates``; the runner draws the
    update sets and applies the deployment's update itself, :meth:`update_recipe` and
    :meth:`update_size` say how). The attack queries the versions and infers, for every
    update, the label distribution of its update set and, where it can, an image of its
    sample — what the data of the update was, not what a class looks like. The runner
    scores them against the true update sets (:mod:`invbench.metrics.updates`).

    Subclasses implement :meth:`_infer_updates`, and :meth:`update_recipe` /
    :meth:`update_size` (the scenario, usually part of the attack's parameters).
    """

    @abstractmethod
    def update_recipe(self) -> UpdateRecipe:
        """How the deployment fine-tunes its model on an update set."""

    @abstractmethod
    def update_size(self) -> int:
        """Samples in each update set (1: single-sample updates, reconstructed as images)."""

    @abstractmethod
    def _infer_updates(self, access: Access, *, generator: torch.Generator,
                       quiet: bool) -> UpdateInference:
        """Infer every update of the target behind ``access`` (versions 1..versions-1)."""

    def infer_updates(self, access: Access, *, seed: int = 0, quiet: bool = True
                      ) -> UpdateInference:
        """Infer the update sets of versions ``1 .. access.versions - 1``, in order.

        Returns an :class:`~invbench.types.UpdateInference` (label distributions, and
        images when the attack reconstructs samples) with the queries it made.
        """
        self._check_access(access)
        n = int(getattr(access, "versions", 1)) - 1
        if n < 1:
            raise ConfigError(
                f"attack '{self.name}' needs a target with at least one update: the access "
                "serves one version of the model (serve it with updates=[...])"
            )
        gen = torch.Generator(device=access.device).manual_seed(int(seed))
        q0 = access.queries
        out = self._infer_updates(access, generator=gen, quiet=quiet)
        dist = out.label_dist.detach().float().cpu()
        if dist.shape != (n, access.num_classes):
            raise RuntimeError(f"attack '{self.name}' returned label distributions of shape "
                               f"{tuple(dist.shape)}, expected ({n}, {access.num_classes})")
        images = None
        if out.images is not None:
            images = out.images.detach().float().cpu()
            if images.shape != (n, *access.image_shape):
                raise RuntimeError(f"attack '{self.name}' returned images of shape "
                                   f"{tuple(images.shape)}, expected ({n}, "
                                   f"{', '.join(map(str, access.image_shape))})")
            if not torch.isfinite(images).all():
                raise RuntimeError(f"attack '{self.name}' produced NaN/Inf images")
            images = images.clamp(0, 1)
        if not torch.isfinite(dist).all():
            raise RuntimeError(f"attack '{self.name}' produced NaN/Inf label distributions")
        return UpdateInference(label_dist=dist, images=images, queries=access.queries - q0)
