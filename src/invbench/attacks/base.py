"""The attack interface.

An attack is a :class:`~invbench.params.Configurable` with a class attribute ``access``
(the weakest access it needs: ``"white-box"``, ``"black-box"`` or ``"label-only"``), an
optional :meth:`Attack.prepare` that learns priors from *public* data only, and one
abstract method, :meth:`Attack._invert`. The public :meth:`Attack.invert` does the chores:
checks the access level, expands labels by ``per_label``, seeds, validates the output.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import Tensor

from invbench.access import LEVELS, Access
from invbench.errors import AccessError, ConfigError
from invbench.params import Configurable
from invbench.types import Reconstruction

if TYPE_CHECKING:
    from invbench.cache import Cache
    from invbench.data.protocol import Split


class Attack(Configurable):
    """Base class of model inversion attacks (one subclass per file in ``attacks/``)."""

    kind: ClassVar[str] = "attack"
    access: ClassVar[str] = "white-box"
    #: True when :meth:`prepare` must see public data (GAN priors and the like).
    needs_public: ClassVar[bool] = False

    def check(self, *, image_shape: tuple[int, int, int]) -> None:
        """Raise a one-line :class:`ConfigError` if the attack cannot run on ``image_shape``.

        Called by the runner before any work (default: every shape is fine). An attack whose
        prior supports only some resolutions (a GAN) overrides it.
        """

    def prepare(
        self,
        public: Split,
        *,
        image_shape: tuple[int, int, int],
        cache: Cache | None = None,
        device: torch.device | str = "cpu",
        seed: int = 0,
        quiet: bool = True,
    ) -> None:
        """Learn priors from public data (default: nothing to learn)."""

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
        rec = self._invert(access, lab, generator=gen, quiet=quiet)
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
