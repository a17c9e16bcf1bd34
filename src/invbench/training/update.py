"""Online updates of a deployed model: the scenario of Updates-Leak (Salem et al. 2020).

A deployed classifier is fine-tuned on a small set of new samples (the *update set*) and
redeployed. :func:`apply_update` is that update — the deployment's recipe
(:class:`UpdateRecipe`) applied to a copy of the model — and is shared by the two sides of
the scenario: the benchmark runner updates the target with private samples, and the
Update-Leaks attacker updates its shadow models with its own samples by the same recipe (the
paper's assumption: the attacker knows how the service updates its model).

The paper's recipe (its ``dataGeneration.py``): SGD, learning rate 1e-3, momentum 0.9, one
epoch over the update set in batches of 64, each update applied to the same original model.
Here the model stays in eval mode during the update: BatchNorm keeps its running statistics
(a batch of one new sample has none), dropout is off, and a stochastic model (MID's
sampled bottleneck) is reseeded from ``seed`` first. Parameters with ``requires_grad`` off
(TL-DMI's frozen blocks) stay as they are.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.data.protocol import check_images
from invbench.errors import ConfigError
from invbench.models.stochastic import reseed
from invbench.training._common import _check_label_range, _check_labels, _output_width

__all__ = ["UpdateRecipe", "apply_update", "draw_label_mixtures", "draw_samples"]


@dataclass(frozen=True)
class UpdateRecipe:
    """How the deployment fine-tunes its model on an update set (defaults: the paper's)."""

    lr: float = 1e-3
    momentum: float = 0.9
    epochs: int = 1
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"update lr must be > 0, got {self.lr!r}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ConfigError(f"update momentum must be in [0, 1), got {self.momentum!r}")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"update {name} must be an integer >= 1, got {v!r}")


def apply_update(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    recipe: UpdateRecipe | None = None,
    seed: int = 0,
) -> nn.Module:
    """A copy of ``model`` fine-tuned on the update set ``(x, y)`` by ``recipe``.

    ``model`` itself is not changed. The batches' order is drawn from ``seed`` (the same
    seed and update set give the same updated weights on the CPU). Returns the copy in eval
    mode, on ``model``'s device.

    Raises:
        DataError: malformed images or labels, labels out of the model's range.

    Example::

        updated = apply_update(target, x_new, y_new, recipe=UpdateRecipe(), seed=0)
    """
    recipe = recipe or UpdateRecipe()
    check_images(x, what="update set")
    y = _check_labels(x, y, what="update set")
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = copy.deepcopy(model).to(dev).eval()
    x, y = x.to(dev, torch.float32), y.to(dev)
    _check_label_range(y, _output_width(out, x, what="update set"), what="update set")
    trained = [p for p in out.parameters() if p.requires_grad]
    if not trained:
        return out
    opt = torch.optim.SGD(trained, lr=recipe.lr, momentum=recipe.momentum)
    gen = torch.Generator().manual_seed(int(seed))
    reseed(out, int(seed))
    with torch.enable_grad():
        for _ in range(recipe.epochs):
            for idx in torch.randperm(x.shape[0], generator=gen).split(recipe.batch_size):
                idx = idx.to(dev)
                loss = F.cross_entropy(out(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return out.eval()


def draw_samples(y: Tensor, labels: Tensor, *, generator: torch.Generator) -> Tensor:
    """One index of ``y`` per entry of ``labels``: single-sample update sets.

    Entries with the same label get distinct samples while the class has enough (then the
    draw starts over). Raises :class:`ConfigError` if a label has no sample in ``y``.
    """
    out = torch.empty(labels.numel(), dtype=torch.long)
    for c in labels.unique().tolist():
        pool = torch.nonzero(y == c).flatten()
        if pool.numel() == 0:
            raise ConfigError(f"no sample of class {c} to draw an update from")
        where = torch.nonzero(labels.cpu() == c).flatten()
        picks = torch.cat([pool[torch.randperm(pool.numel(), generator=generator)]
                           for _ in range(-(-where.numel() // pool.numel()))])
        out[where] = picks[: where.numel()]
    return out


def draw_label_mixtures(
    y: Tensor, *, n: int, size: int, classes: list[int], generator: torch.Generator,
    num_classes: int | None = None,
) -> tuple[list[Tensor], Tensor]:
    """``n`` update sets of ``size`` indices of ``y`` with random label proportions.

    Each set's proportions over ``classes`` are drawn from a flat Dirichlet (so sets range
    from one class to all of them), its class counts from the multinomial of those
    proportions, and its samples without replacement within each class (with replacement
    when a class has fewer samples than asked). Returns the index sets and their label
    distributions ``(n, num_classes)`` (default ``max(classes) + 1``; the fraction of each
    label in each set).
    """
    if n < 1 or size < 1 or not classes:
        raise ConfigError(f"draw_label_mixtures: need n >= 1, size >= 1 and classes, got "
                          f"n={n}, size={size}, classes={classes}")
    pools = {c: torch.nonzero(y == c).flatten() for c in classes}
    empty = [c for c, pool in pools.items() if pool.numel() == 0]
    if empty:
        raise ConfigError(f"no sample of classes {empty} to draw update sets from")
    width = max(classes) + 1 if num_classes is None else int(num_classes)
    if width <= max(classes):
        raise ConfigError(f"draw_label_mixtures: num_classes={width} but classes reach "
                          f"{max(classes)}")
    sets, dists = [], torch.zeros(n, width)
    for i in range(n):
        e = -torch.log(torch.rand(len(classes), generator=generator).clamp_min(1e-12))
        counts = torch.multinomial(e / e.sum(), size, replacement=True,
                                   generator=generator).bincount(minlength=len(classes))
        parts = []
        for c, k in zip(classes, counts.tolist(), strict=True):
            if k == 0:
                continue
            pool = pools[c]
            if k <= pool.numel():
                parts.append(pool[torch.randperm(pool.numel(), generator=generator)[:k]])
            else:
                parts.append(pool[torch.randint(pool.numel(), (k,), generator=generator)])
            dists[i, c] = k / size
        sets.append(torch.cat(parts))
    return sets, dists
