"""TL-DMI: transfer learning as a model inversion defense (Ho et al., CVPR 2024)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.errors import ConfigError
from invbench.params import Params
from invbench.registry import register_defense


def frozen_modules(model: nn.Module, frozen: int) -> list[nn.Module]:
    """The first ``frozen`` blocks of ``model`` (``model.blocks()``), after range checks."""
    blocks = model.blocks()  # type: ignore[operator]
    if frozen > len(blocks):
        raise ConfigError(
            f"The 'frozen' parameter of defense 'tl-dmi' must be <= {len(blocks)}, the number "
            f"of blocks of this target. Got {frozen} instead."
        )
    return list(blocks[:frozen])


@register_defense("tl-dmi")
class TLDMI(Defense):
    """TL-DMI: pretrain on public data, freeze the first blocks, fine-tune the rest privately.

    Paper: S.-T. Ho, K. J. Hao, K. Chandrasegaran, N.-B. Nguyen, N.-M. Cheung, "Model
    Inversion Robustness: Can Transfer Learning Help?", CVPR 2024 (reference code:
    github.com/hosytuyen/TL-DMI). The
    early layers carry most of the private information an inversion exploits (the paper's
    Fisher-information analysis); learning them from public data only and freezing them
    limits what the private fine-tuning can encode.

    Training (:meth:`fit`), in two stages:

    1. *Pretraining* on the public split, its classes relabelled ``0..k-1``: the target's
       architecture with a ``k``-way head, plain cross-entropy, ``pretrain_epochs`` (default:
       the run's ``train.epochs``) and the run's other training settings. Cached on its own
       (by the public data, architecture, settings and seed) when :meth:`train` gets a cache,
       so every ``frozen`` of a sweep shares it.
    2. *Fine-tuning* on the private training split: the pretrained body is copied into the
       target, the first ``frozen`` blocks (:meth:`~invbench.models.Classifier.blocks`) are
       frozen — ``requires_grad`` off and their BatchNorm layers kept in eval mode, so their
       running statistics stay the pretrained ones — and the remaining blocks and a new head
       are trained.

    Two bugs of the reference code are not reproduced: it leaves the frozen layers'
    BatchNorm in training mode (their statistics drift to the private data), and a
    ``requries_grad`` typo leaves the input layer trainable.

    Threat model: a training-time defense; it changes the model, so it applies to every
    access level. It assumes the defender has the public data too.

    Arguments:
        frozen: blocks frozen after pretraining (the strength; 0 is plain fine-tuning of a
            pretrained model). The reference freezes VGG16 up to its ``freeze_layers`` index.
        pretrain_epochs: epochs of the public pretraining (0: the run's ``train.epochs``).

    Example::

        model = TLDMI(frozen=4).train(protocol, seed=0)
    """

    class Params(Params):
        """TL-DMI's parameters."""

        frozen: int = Field(3, ge=0, description="blocks frozen after public pretraining")
        pretrain_epochs: int = Field(
            0, ge=0, description="epochs of public pretraining (0: the run's train.epochs)"
        )

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
        """Pretrain on public data (cached), copy the body, freeze, fine-tune privately."""
        cfg = config or TrainConfig()
        frozen_modules(model, self.params.frozen)  # refuse a bad `frozen` before any work
        pre = self.pretrain(data, config=cfg, seed=seed, device=device, quiet=quiet)
        model.body.load_state_dict(pre.body.state_dict())  # type: ignore[union-attr]
        for block in frozen_modules(model, self.params.frozen):
            block.requires_grad_(False)
        return super().fit(model, data, config=cfg, seed=seed, device=device, quiet=quiet)

    def pretrain(
        self,
        data: TrainingData,
        *,
        config: TrainConfig,
        seed: int,
        device: torch.device | str = "cpu",
        quiet: bool = True,
    ) -> nn.Module:
        """The target's architecture trained on the public classes (from the cache if there)."""
        from invbench.models import make_classifier
        from invbench.training import train_classifier

        classes, y = torch.unique(data.public.y, sorted=True, return_inverse=True)
        epochs = self.params.pretrain_epochs or config.epochs
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pre = make_classifier(config.arch, image_shape=data.image_shape,
                                  num_classes=int(classes.numel()))

        def create() -> dict[str, Any]:
            train_classifier(
                pre, data.public.x, y, epochs=epochs, batch_size=config.batch_size,
                lr=config.lr, weight_decay=config.weight_decay, augment=config.augment,
                seed=seed, device=device, quiet=quiet, desc="tl-dmi: pretrain on public",
            )
            return {"public_classes": classes.tolist()}

        if self.cache_ is None:
            create()
        else:
            parts = {
                "stage": "tl-dmi-pretrain",
                "public": data.public.digest(),
                "train": config.model_copy(update={"epochs": epochs}).model_dump(),
                "seed": int(seed),
            }
            self.cache_.get_or_create("pretrained", parts, {"model": pre}, create)
        return pre.to(device).eval()

    def train_hooks(
        self, model: nn.Module, data: TrainingData, config: TrainConfig, seed: int
    ) -> dict[str, Any]:
        """Train only the unfrozen parameters; keep the frozen blocks' BatchNorm in eval."""
        frozen = frozen_modules(model, self.params.frozen)

        def keep_frozen_in_eval(_epoch: int) -> None:
            for block in frozen:
                block.eval()  # the loop put the whole model in train mode

        trainable = [p for p in model.parameters() if p.requires_grad]
        return {"params": trainable, "on_epoch": keep_frozen_in_eval}
