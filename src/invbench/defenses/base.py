"""The defense interface.

A defense decides how the target is *built* (:meth:`Defense.build`, e.g. MID swaps the
head for a variational information bottleneck) and how it is *trained*
(:meth:`Defense.loss`, e.g. MID adds beta * KL). :meth:`Defense.train` runs both through
the shared loop in :mod:`invbench.training`. ``none`` is plain training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from invbench.params import Configurable

if TYPE_CHECKING:
    from invbench.cache import Cache
    from invbench.data.protocol import Protocol, Split


class TrainConfig(BaseModel):
    """How targets are trained (shared by every defense; part of every target's cache key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = Field("auto", description="target architecture ('auto' picks by resolution)")
    epochs: int = Field(30, ge=1, description="training epochs")
    batch_size: int = Field(64, ge=1, description="mini-batch size")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")
    augment: bool = Field(False, description="random shifts during training")

    @field_validator("arch")
    @classmethod
    def _target_family(cls, arch: str) -> str:
        """Targets come from the target families only: evaluator and surrogate families stay
        independent of every target (an evaluator or LOMMA surrogate of the target's own
        family would flatter the attack)."""
        from invbench.models import TARGET_ARCHS

        if arch not in TARGET_ARCHS:
            raise ValueError(
                f"'{arch}' is not a target family; choose one of: {', '.join(TARGET_ARCHS)}"
            )
        return arch


@dataclass(frozen=True)
class TrainingData:
    """What a defense may train on: the private *training* split and the public split.

    Never the held-out ``private_test`` images: utility is measured by the runner on data no
    defense has seen. A defense that needs model selection carves a seeded validation split
    out of ``private_train`` (:meth:`validation_split`).

    Attributes:
        private_train: the target's training images and labels.
        public: the attacker's public images (other classes of the same domain); a defense
            may use them too (TL-DMI pretrains on them).
        num_classes: the target's number of classes.
        image_shape: ``(C, H, W)``.
    """

    private_train: Split
    public: Split
    num_classes: int
    image_shape: tuple[int, int, int]

    @classmethod
    def from_protocol(cls, protocol: Protocol) -> TrainingData:
        """The training view of ``protocol`` (drops ``private_test``)."""
        return cls(
            private_train=protocol.private_train,
            public=protocol.public,
            num_classes=protocol.num_classes,
            image_shape=protocol.image_shape,
        )

    def validation_split(self, fraction: float, *, seed: int) -> tuple[Split, Split]:
        """``(train, validation)``: a seeded random ``fraction`` of ``private_train`` held out.

        Raises:
            ConfigError: ``fraction`` not in (0, 1), or a split that would be empty.
        """
        from invbench.data.protocol import Split
        from invbench.errors import ConfigError

        n = len(self.private_train)
        k = int(round(float(fraction) * n))
        if not 0 < fraction < 1 or not 0 < k < n:
            raise ConfigError(
                f"validation fraction must be in (0, 1) and leave both parts non-empty; got "
                f"{fraction} of {n} training images"
            )
        order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        x, y = self.private_train.x, self.private_train.y
        return Split(x[order[k:]], y[order[k:]]), Split(x[order[:k]], y[order[:k]])


class Defense(Configurable):
    """Base class of training-time defenses (one subclass per file in ``defenses/``)."""

    kind: ClassVar[str] = "defense"
    #: the cache :meth:`train` was given (for a multi-stage :meth:`fit`), and whether
    #: :meth:`train` loaded the target from it instead of training
    cache_: Cache | None = None
    train_hit_: bool = False
    #: what the training reports beyond the weights (DP-SGD: the ε and δ spent); stored with
    #: the cached target and in every result row as ``defense_<key>``
    report_: dict[str, float] = {}  # noqa: RUF012  (replaced per instance by train)

    def build(self, *, arch: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        """The untrained target (default: the plain classifier for ``arch``)."""
        from invbench.models import make_classifier

        return make_classifier(arch, image_shape=image_shape, num_classes=num_classes)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Training loss on one batch (default: cross-entropy)."""
        return F.cross_entropy(model(x), y)

    def cache_parts(self, protocol: Protocol, config: TrainConfig, seed: int) -> dict[str, Any]:
        """Everything that determines the trained target (its cache key)."""
        return {
            "protocol": protocol.fingerprint(),
            "train": config.model_dump(),
            "defense": self.name,
            "defense_params": self.get_params(),
            "seed": int(seed),
        }

    def train(
        self,
        protocol: Protocol,
        *,
        config: TrainConfig | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        quiet: bool = True,
        cache: Cache | None = None,
    ) -> nn.Module:
        """Build (seeded) and train the target on ``protocol``'s training view; eval mode.

        :meth:`fit` sees :class:`TrainingData` only (never ``private_test``). With ``cache``
        the trained weights are stored under :meth:`cache_parts` and a later call with the
        same protocol, config, defense parameters and seed loads them instead of training
        (``train_hit_`` says which happened). A defense with several stages caches each
        inside its own :meth:`fit` (it receives the same cache as ``self.cache_``).
        """
        cfg = config or TrainConfig()
        torch.manual_seed(seed)
        model = self.build(
            arch=cfg.arch, image_shape=protocol.image_shape, num_classes=protocol.num_classes
        )
        data = TrainingData.from_protocol(protocol)
        self.cache_ = cache
        self.train_hit_ = False
        self.report_ = {}
        if cache is None:
            return self.fit(model, data, config=cfg, seed=seed, device=device, quiet=quiet)

        def create() -> dict[str, Any]:
            self.fit(model, data, config=cfg, seed=seed, device=device, quiet=quiet)
            return {"defense": self.name, "report": dict(self.report_)}

        meta, self.train_hit_ = cache.get_or_create(
            "target", self.cache_parts(protocol, cfg, seed), {"model": model}, create
        )
        self.report_ = {k: float(v) for k, v in (meta.get("report") or {}).items()}
        return model.to(device).eval()

    def fit(
        self,
        model: nn.Module,
        data: TrainingData,
        *,
        config: TrainConfig | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        quiet: bool = True,
    ) -> nn.Module:
        """Train a model from :meth:`build` in place on ``data.private_train``; eval mode."""
        from invbench.training import train_classifier

        cfg = config or TrainConfig()
        if not isinstance(data, TrainingData):
            raise TypeError(
                f"Defense.fit takes TrainingData (private train + public, never private "
                f"test), got {type(data).__name__}; use TrainingData.from_protocol"
            )
        hooks = self.train_hooks(model, data, cfg, seed)
        train_classifier(
            model,
            data.private_train.x,
            data.private_train.y,
            loss_fn=hooks.pop("loss_fn", self.loss),
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            augment=cfg.augment,
            seed=seed,
            device=device,
            quiet=quiet,
            desc=f"train target ({self.name})",
            **hooks,
        )
        return model.eval()

    def train_hooks(
        self, model: nn.Module, data: TrainingData, config: TrainConfig, seed: int
    ) -> dict[str, Any]:
        """Extra keyword arguments for :func:`~invbench.training.train_classifier` (default
        none): ``loss_fn`` (replaces :meth:`loss`), ``params``, ``optimizer``, ``batch_fn``,
        ``sampler`` or ``on_epoch``; ``seed`` is the training seed. So that
        a defense changes the one training loop instead of writing its own (random erasing
        rewrites batches, label smoothing schedules its factor per epoch, DP-SGD samples and
        clips, TL-DMI trains only its unfrozen blocks)."""
        return {}
