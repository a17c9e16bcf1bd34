"""DP-SGD (Abadi et al., CCS 2016) through opacus: the classic differentially private baseline."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.defenses.base import Defense, TrainConfig, TrainingData
from invbench.errors import ConfigError, optional_import
from invbench.params import Params
from invbench.registry import register_defense


def poisson_batches(n: int, rate: float, steps: int, generator: torch.Generator) -> list[Tensor]:
    """``steps`` batches of one epoch, each holding every index with probability ``rate``.

    Poisson sampling, the sampling the RDP accountant's ε assumes (a shuffled partition
    into fixed batches is not what the analysis covers). Batches vary in size.
    """
    return [torch.nonzero(torch.rand(n, generator=generator) < rate).flatten()
            for _ in range(steps)]


@register_defense("dp-sgd")
class DPSGD(Defense):
    """DP-SGD: per-example clipping and Gaussian noise, with the privacy actually spent.

    Paper: M. Abadi, A. Chu, I. Goodfellow, H. B. McMahan, I. Mironov, K. Talwar, L. Zhang,
    "Deep Learning with Differential Privacy", CCS 2016. Implementation: opacus (optional
    extra ``dp``: ``pip install 'invbench[dp]'``) — per-example gradients
    (``GradSampleModule``), clipping to ``max_grad_norm`` and noise ``noise_multiplier *
    max_grad_norm`` (``DPOptimizer`` around the run's Adam), and the RDP accountant.

    Threat model: a training-time defense with a formal guarantee: the target is
    (ε, δ)-differentially private with respect to its training images, which bounds what any
    attack — of any access level — can learn about one image (the MID paper's bound relates
    it to model inversion). Inverting a *class* is not what DP protects against; the
    benchmark measures how much it helps anyway.

    Details that make the reported ε true:

    * Batches are Poisson-sampled (each image with probability ``batch_size / N`` per step,
      ``N / batch_size`` steps an epoch), as the accountant assumes.
    * BatchNorm mixes examples of a batch, which per-example clipping cannot bound: the
      target's BatchNorm layers are replaced by GroupNorm (opacus' ``ModuleValidator.fix``),
      so a DP-SGD target has a different architecture from the others.
    * ``delta`` 1e-5 is below ``1/N`` for every protocol invbench ships.

    Give either ``epsilon`` (the noise multiplier that reaches it after ``train.epochs`` is
    computed) or ``noise_multiplier``. After training, ``report_`` holds the ε actually spent
    and δ; the runner stores them in the row as ``defense_epsilon`` and ``defense_delta``.

    Example::

        model = DPSGD(epsilon=8.0).train(protocol, seed=0)
        DPSGD(noise_multiplier=1.0)   # fixed noise; ε reported after training
    """

    class Params(Params):
        """The privacy budget or noise, and the clipping norm."""

        epsilon: float | None = Field(
            8.0, gt=0.0, description="target ε (the strength); None: use noise_multiplier"
        )
        noise_multiplier: float | None = Field(
            None, gt=0.0, description="noise std / clipping norm; set epsilon to None to use it"
        )
        delta: float = Field(1e-5, gt=0.0, lt=1.0, description="δ of (ε, δ)-DP")
        max_grad_norm: float = Field(1.0, gt=0.0, description="per-example gradient clip norm")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        p = self.params
        if (p.epsilon is None) == (p.noise_multiplier is None):
            raise ConfigError(
                f"The 'epsilon' parameter of defense '{self.name}' and 'noise_multiplier' "
                "are exclusive: give exactly one (epsilon=None, noise_multiplier=1.0 for fixed "
                "noise)"
            )
        self._cleanup: list[Any] = []

    def build(self, *, arch: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        """The plain target with BatchNorm replaced by GroupNorm (opacus' fix) and
        out-of-place ReLUs (opacus' backward hooks cannot see through in-place ones)."""
        validators = optional_import("opacus.validators", extra="dp", purpose="dp-sgd")
        model = validators.ModuleValidator.fix(
            super().build(arch=arch, image_shape=image_shape, num_classes=num_classes)
        )
        for module in model.modules():  # per-example gradient hooks forbid in-place ReLU
            if isinstance(module, nn.ReLU):
                module.inplace = False
        return model

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
        """Train with DP-SGD, then record the ε spent in ``report_`` and remove the hooks."""
        try:
            with warnings.catch_warnings():
                # opacus warns that its RNG is not cryptographically secure: expected here
                warnings.simplefilter("ignore")
                out = super().fit(model, data, config=config, seed=seed, device=device,
                                  quiet=quiet)
        finally:
            for close in self._cleanup:
                close()
            self._cleanup = []
        return out

    def train_hooks(
        self, model: nn.Module, data: TrainingData, config: TrainConfig, seed: int
    ) -> dict[str, Any]:
        """Poisson sampler, per-example gradients and the private optimiser with its accountant."""
        opacus = optional_import("opacus", extra="dp", purpose="dp-sgd")
        accountants = optional_import("opacus.accountants", extra="dp", purpose="dp-sgd")
        utils = optional_import("opacus.accountants.utils", extra="dp", purpose="dp-sgd")
        p = self.params
        n = len(data.private_train)
        batch = min(config.batch_size, n)
        rate = batch / n
        steps = max(1, round(n / batch))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sigma = p.noise_multiplier or utils.get_noise_multiplier(
                target_epsilon=p.epsilon, target_delta=p.delta, sample_rate=rate,
                steps=steps * config.epochs, accountant="rdp",
            )
        grad_sample = opacus.GradSampleModule(model, loss_reduction="mean")
        self._cleanup.append(grad_sample._close)
        accountant = accountants.RDPAccountant()
        noise = torch.Generator().manual_seed(int(seed) + 1)

        def private_optimizer(params: list[Any]) -> torch.optim.Optimizer:
            inner = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
            opt = opacus.optimizers.DPOptimizer(
                inner, noise_multiplier=float(sigma), max_grad_norm=p.max_grad_norm,
                expected_batch_size=batch, loss_reduction="mean", generator=noise,
            )
            opt.attach_step_hook(accountant.get_optimizer_hook_fn(sample_rate=rate))
            return opt

        def record() -> None:
            self.report_ = {
                "epsilon": float(accountant.get_epsilon(delta=p.delta)) if accountant.history
                else 0.0,
                "delta": float(p.delta),
                "noise_multiplier": float(sigma),
            }

        self._cleanup.append(record)

        def sampler(size: int, generator: torch.Generator) -> list[Tensor]:
            return poisson_batches(size, rate, steps, generator)

        return {"optimizer": private_optimizer, "sampler": sampler}
