"""The defense interface.

A defense decides how the target is *built* (:meth:`Defense.build`, e.g. MID swaps the
head for a variational information bottleneck) and how it is *trained*
(:meth:`Defense.loss`, e.g. MID adds beta * KL). :meth:`Defense.train` runs both through
the shared loop in :mod:`invbench.training`. ``none`` is plain training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from invbench.params import Configurable

if TYPE_CHECKING:
    from invbench.data.protocol import Protocol


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


class Defense(Configurable):
    """Base class of training-time defenses (one subclass per file in ``defenses/``)."""

    kind: ClassVar[str] = "defense"

    def build(self, *, arch: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        """The untrained target (default: the plain classifier for ``arch``)."""
        from invbench.models import make_classifier

        return make_classifier(arch, image_shape=image_shape, num_classes=num_classes)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Training loss on one batch (default: cross-entropy)."""
        return F.cross_entropy(model(x), y)

    def train(
        self,
        protocol: Protocol,
        *,
        config: TrainConfig | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        quiet: bool = True,
    ) -> nn.Module:
        """Build (seeded) and train the target on ``protocol.private_train``; eval mode."""
        cfg = config or TrainConfig()
        torch.manual_seed(seed)
        model = self.build(
            arch=cfg.arch, image_shape=protocol.image_shape, num_classes=protocol.num_classes
        )
        return self.fit(model, protocol, config=cfg, seed=seed, device=device, quiet=quiet)

    def fit(
        self,
        model: nn.Module,
        protocol: Protocol,
        *,
        config: TrainConfig | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        quiet: bool = True,
    ) -> nn.Module:
        """Train a model from :meth:`build` in place on ``protocol.private_train``; eval mode."""
        from invbench.training import train_classifier

        cfg = config or TrainConfig()
        train_classifier(
            model,
            protocol.private_train.x,
            protocol.private_train.y,
            loss_fn=self.loss,
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            augment=cfg.augment,
            seed=seed,
            device=device,
            quiet=quiet,
            desc=f"train target ({self.name})",
        )
        return model.eval()
