"""Adversarial examples and adversarial training.

- :func:`pgd`: L-infinity projected gradient descent (Madry, Makelov, Schmidt, Tsipras and
  Vladu, "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018,
  https://arxiv.org/abs/1706.06083) on the cross-entropy of a model's logits, targeted or
  untargeted, with Expectation over Transformation (Athalye, Engstrom, Ilyas and Kwok,
  "Synthesizing Robust Adversarial Examples", ICML 2018, https://arxiv.org/abs/1707.07397)
  for stochastic models.
- :class:`AdversarialTraining`: how :func:`invbench.training.train_classifier` replaces each
  batch by adversarial examples: ``"pgd"`` (Madry et al. 2018: a random start, then
  ``steps`` sign-gradient steps) or ``"fgsm-rs"`` (Wong, Rice and Kolter, "Fast is better
  than free: Revisiting adversarial training", ICLR 2020, https://arxiv.org/abs/2001.03994:
  one step of 1.25 eps from a uniform random start).
- :func:`default_adversarial`: the settings per resolution (eps = 0.1 up to 32 px, the
  budget of the ``adversarial`` reference; 8/255 above).

Everything works in pixel space: images (N, C, H, W) in [0, 1], perturbations bounded by
``eps`` in the L-infinity norm.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from invbench.data.protocol import check_images
from invbench.errors import ConfigError, DataError

__all__ = ["AdversarialTraining", "default_adversarial", "pgd"]

FGSM_RS_STEP = 1.25  # Wong et al. 2020: FGSM step = 1.25 eps from a uniform random start
PGD_TRAIN_STEPS = 3  # PGD training steps of default_adversarial (see its docstring)
PGD_TRAIN_STEP_FACTOR = 2.5  # step_size = 2.5 * eps / steps: the steps can cross the ball


def _number(name: str, value: object, *, minimum: float, strict: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float)
    v = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(v) and (v > minimum if strict else v >= minimum)):
        op = ">" if strict else ">="
        raise ConfigError(f"pgd: {name} must be a finite number {op} {minimum:g}, got {value!r}")
    return v


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"pgd: {name} must be an int >= 1, got {value!r}")
    return int(value)


def pgd(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    targeted: bool = False,
    random_start: bool = False,
    generator: torch.Generator | None = None,
    eot: int = 1,
    batch_size: int | None = None,
) -> Tensor:
    """L-infinity PGD (Madry et al., ICLR 2018, https://arxiv.org/abs/1706.06083).

    Starting from ``x`` (or, with ``random_start``, from ``x`` plus uniform noise in
    ``[-eps, eps]``), each of ``steps`` steps moves every pixel by ``step_size`` along the
    sign of the gradient of the cross-entropy of ``model``'s logits, then projects onto the
    eps-ball around ``x`` and onto [0, 1]:

    - untargeted (default): ascend the cross-entropy of the true labels ``y`` (make the
      model misclassify);
    - ``targeted=True``: descend the cross-entropy of ``y`` (the target labels).

    Per-sample losses are summed, so each image's gradient is its own and splitting the
    batch (``batch_size``) changes no number for a model that treats samples independently
    (an ``nn.Module`` in eval mode). With ``eot`` > 1 the gradient is averaged over that many
    forward passes (Expectation over Transformation, Athalye et al., ICML 2018,
    https://arxiv.org/abs/1707.07397), for models that sample at prediction time (MID): a
    model with ``predict_draws(x, n) -> (n, B, K)`` (MID's bottleneck, which samples only in
    its head) gives all ``n`` draws from one pass of its deterministic part; any other model
    is called ``eot`` times. The loop makes no host syncs.
    ``model``'s train/eval mode and parameters are left as they are (only input gradients
    are computed). Works under ``torch.inference_mode()`` too (it is lifted inside).

    Args:
        model: any callable images (B, C, H, W) -> logits (B, K), e.g. a classifier in eval mode.
        x: clean images (N, C, H, W) in [0, 1].
        y: labels (N,) in [0, K): the true labels (untargeted) or the targets (targeted).
        eps: L-infinity radius in pixel units, >= 0 (e.g. 0.1, or 8/255 for 64 px images).
        steps: number of sign-gradient steps, >= 1.
        step_size: size of each step, > 0 (e.g. 2.5 * eps / steps).
        targeted: descend toward ``y`` instead of ascending away from it.
        random_start: start from a uniform point of the eps-ball (drawn with ``generator``,
            on the CPU, for the whole batch at once: chunking does not change the draw).
        generator: the CPU ``torch.Generator`` for the random start (default: torch's global RNG).
        eot: forward passes averaged per step (>= 1; 1 for a deterministic model).
        batch_size: attack at most this many images at a time (default: all at once).

    Returns:
        Detached adversarial images (N, C, H, W) in [0, 1] on ``x``'s device and dtype, with
        ``|x_adv - x| <= eps`` elementwise.

    Raises:
        ConfigError: ``eps`` < 0, ``steps`` < 1, ``step_size`` <= 0, ``eot`` < 1 or
            ``batch_size`` < 1 (non-numbers included).
        DataError: malformed images or labels.

    Example::

        x_adv = pgd(target.eval(), x, torch.full((len(x),), 3), eps=0.1, steps=100,
                    step_size=0.01, targeted=True)
    """
    eps = _number("eps", eps, minimum=0.0, strict=False)
    step_size = _number("step_size", step_size, minimum=0.0, strict=True)
    steps = _count("steps", steps)
    eot = _count("eot", eot)
    if batch_size is not None:
        batch_size = _count("batch_size", batch_size)
    check_images(x, what="pgd")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != x.shape[0]:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise DataError(f"pgd: labels must be a tensor of shape ({x.shape[0]},), got {got}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise DataError(f"pgd: labels must be integer class ids, got dtype {y.dtype}")

    return _pgd(
        model, x, y, eps=eps, steps=steps, step_size=step_size, targeted=targeted,
        random_start=random_start, generator=generator, eot=eot, batch_size=batch_size,
    )


def _pgd(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    targeted: bool,
    random_start: bool,
    generator: torch.Generator | None,
    eot: int,
    batch_size: int | None,
) -> Tensor:
    """:func:`pgd` without input validation (and so without any host sync)."""
    with torch.inference_mode(False):
        x = x.detach().clone()  # a normal tensor even if x was made under inference_mode
        y = y.detach().clone().to(x.device).long()
        if random_start:
            noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device="cpu")
            start = (x + (noise.to(x.device) * 2.0 - 1.0) * eps).clamp_(0.0, 1.0)
        else:
            start = x.clone()
        chunk = x.shape[0] if batch_size is None else batch_size
        sign = -1.0 if targeted else 1.0
        outs = []
        with torch.enable_grad():
            for i in range(0, x.shape[0], chunk):
                outs.append(
                    _pgd_chunk(
                        model,
                        x[i : i + chunk],
                        y[i : i + chunk],
                        start[i : i + chunk],
                        eps=eps,
                        steps=steps,
                        step_size=step_size * sign,
                        eot=eot,
                    )
                )
        return torch.cat(outs).detach()


def _pgd_chunk(
    model: Callable[[Tensor], Tensor],
    x: Tensor,
    y: Tensor,
    adv: Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    eot: int,
) -> Tensor:
    lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
    adv = adv.clone()
    draws = getattr(model, "predict_draws", None)
    for _ in range(steps):
        adv.requires_grad_(True)
        if eot > 1 and draws is not None:
            # all EOT draws from one backbone pass (the model samples only in its head)
            logits = draws(adv, eot)  # (eot, B, K)
            loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(eot), reduction="sum")
            (grad,) = torch.autograd.grad(loss, adv)
        else:
            grad = torch.zeros_like(adv)
            for _ in range(eot):  # the sign of the summed gradient is that of the mean
                loss = F.cross_entropy(model(adv), y, reduction="sum")
                (g,) = torch.autograd.grad(loss, adv)
                grad += g
        with torch.no_grad():
            adv = adv.detach() + step_size * grad.sign()
            adv = torch.minimum(torch.maximum(adv, lo), hi)
    return adv.detach()


class AdversarialTraining(BaseModel):
    """Adversarial training settings for :func:`invbench.training.train_classifier`.

    Each training batch is replaced by adversarial examples of the current model
    (untargeted, on the true labels, L-infinity ball of radius ``eps`` in pixel units):

    - ``method="pgd"``: Madry et al., ICLR 2018 (https://arxiv.org/abs/1706.06083): a
      uniform random start, then ``steps`` sign-gradient steps of ``step_size``.
    - ``method="fgsm-rs"``: Wong, Rice and Kolter, "Fast is better than free", ICLR 2020
      (https://arxiv.org/abs/2001.03994): one step (``steps`` must be 1) from a uniform
      random start, of ``step_size`` (their choice: 1.25 eps).

    A model trained so is harder to fool: its decisions and features change little within
    the ball, so features that fool another model (transferred adversarial features) do not
    move it. Use :func:`default_adversarial` for the settings per resolution.

    Example::

        adv = AdversarialTraining(method="pgd", eps=0.1, steps=3, step_size=0.0833)
        train_classifier(model, x, y, epochs=10, adversarial=adv)
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    method: Literal["pgd", "fgsm-rs"] = Field(description="'pgd' (Madry) or 'fgsm-rs' (Wong)")
    eps: float = Field(gt=0, le=1, description="L-infinity radius in pixel units")
    steps: int = Field(ge=1, description="attack steps per batch (1 for fgsm-rs)")
    step_size: float = Field(gt=0, le=1, description="size of each sign-gradient step")

    @model_validator(mode="after")
    def _one_step_for_fgsm(self) -> AdversarialTraining:
        if self.method == "fgsm-rs" and self.steps != 1:
            raise ValueError(f"fgsm-rs takes exactly one step, got steps={self.steps}")
        return self

    def describe(self) -> str:
        """A short label, e.g. ``"PGD eps=0.1"`` or ``"FGSM-RS eps=0.0314"``."""
        return f"{self.method.upper()} eps={self.eps:.3g}"

    def perturb(
        self, model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Adversarial examples of ``x`` (N, C, H, W) in [0, 1] for ``model`` (random start).

        Untargeted on the true labels ``y``; no input validation and no host sync (it runs
        once per training batch); the random start is drawn from ``generator``.
        """
        return _pgd(
            model, x, y, eps=self.eps, steps=self.steps, step_size=self.step_size,
            targeted=False, random_start=True, generator=generator, eot=1, batch_size=None,
        )


def default_adversarial(
    image_shape: tuple[int, int, int],
    *,
    method: Literal["pgd", "fgsm-rs"] = "pgd",
    eps: float | None = None,
    steps: int | None = None,
) -> AdversarialTraining:
    """The adversarial-training settings for images of ``image_shape`` (C, H, W).

    ``eps`` is 0.1 up to 32 px (the ``adversarial`` reference perturbs public images by
    exactly 0.1 in L-infinity, so the robust evaluator is trained to resist that budget) and
    8/255 above (the usual budget for natural images). ``"pgd"``: 3 steps of 2.5 eps / steps
    from a random start (the common step rule of PGD training, so the steps together can
    cross the whole ball; each batch costs 3 extra forward-backward passes: measured 3.5-3.7x
    the time of standard training for the ``dense`` evaluator on one CPU thread, 8 px and
    28 px). ``"fgsm-rs"``: one step of 1.25 eps (Wong et al. 2020; measured 2.0x).

    Args:
        image_shape: ``(C, H, W)`` of the training images.
        method: ``"pgd"`` or ``"fgsm-rs"``.
        eps: override the radius (the step size follows the rule above).
        steps: override the number of PGD steps (``fgsm-rs`` takes exactly 1).

    Raises:
        ConfigError: a malformed ``image_shape``, an unknown ``method``, ``eps`` outside
            (0, 1], ``steps`` < 1, or ``steps`` != 1 with ``fgsm-rs``.

    Example::

        adv = default_adversarial((1, 28, 28))   # PGD, eps=0.1, 3 steps of 0.0833
    """
    shape = tuple(image_shape)
    if len(shape) != 3 or isinstance(shape[1], bool) or not isinstance(shape[1], int):
        raise ConfigError(f"image_shape must be (channels, height, width), got {image_shape!r}")
    if eps is None:
        eps = 0.1 if shape[1] <= 32 else 8 / 255
    elif isinstance(eps, bool) or not isinstance(eps, int | float) or not 0 < eps <= 1:
        raise ConfigError(f"adversarial eps must be a number in (0, 1], got {eps!r}")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"adversarial steps must be an int >= 1, got {steps!r}")
    if method == "pgd":
        steps = PGD_TRAIN_STEPS if steps is None else steps
        step = PGD_TRAIN_STEP_FACTOR * eps / steps
    elif method == "fgsm-rs":
        if steps not in (None, 1):
            raise ConfigError(f"adversarial method 'fgsm-rs' takes exactly 1 step, got {steps!r}")
        steps, step = 1, FGSM_RS_STEP * eps
    else:
        raise ConfigError(f"adversarial method must be 'pgd' or 'fgsm-rs', got {method!r}")
    return AdversarialTraining(method=method, eps=float(eps), steps=steps, step_size=min(step, 1.0))
