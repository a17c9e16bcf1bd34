"""Minimal query-only attacks for the serving tests (importable by the spawned worker)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from invbench.attacks.base import Attack
from invbench.params import Params
from invbench.types import Reconstruction


class RandomSearch(Attack):
    """Best of ``tries`` uniform-noise images per label by the target's confidence."""

    name: ClassVar[str] = "random-search"
    access: ClassVar[str] = "black-box"

    class Params(Params):
        """How many random images are scored per reconstruction."""

        tries: int = Field(8, ge=1, description="random images per reconstruction")

    def _invert(self, access, labels, *, generator, quiet):  # noqa: ANN001
        n, t = labels.numel(), self.params.tries
        x = torch.rand(n * t, *access.image_shape, generator=generator, device=access.device)
        probs = access.predict_proba(x).view(n, t, -1)
        conf = probs.gather(2, labels.view(n, 1, 1).expand(n, t, 1)).squeeze(2)
        best = conf.argmax(1)
        images = x.view(n, t, *access.image_shape)[torch.arange(n), best]
        return Reconstruction(images, labels, conf.max(1).values)


#: where PeekAtTarget keeps what it loaded (so it is still in memory when the probe looks)
STOLEN: list = []


class PeekAtTarget(RandomSearch):
    """A cheating attack: reads the target's weights from the run's cache files.

    The positive control of the barrier's test: the worker's memory probe must find it.
    """

    name: ClassVar[str] = "peek"

    def _prepare(self, public, *, access, cache, seed, quiet):  # noqa: ANN001
        from safetensors.torch import load_file

        from invbench.models import make_classifier

        root = cache.root.parent.parent  # views/<owner> -> the run's whole cache
        for path in sorted(root.rglob("*.safetensors")):
            if "views" in path.parts:
                continue
            model = make_classifier("cnn-s", image_shape=access.image_shape,
                                    num_classes=access.num_classes)
            state = {k.removeprefix("model."): v for k, v in load_file(str(path)).items()}
            model.load_state_dict(state)
            STOLEN.append(model.eval())
