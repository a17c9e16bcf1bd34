"""Per-layer diagonal Fisher information of log p(y|x): the classification task vs inversion.

The evidence of TL-DMI (Ho et al., "Model Inversion Robustness: Can Transfer Learning
Help?", CVPR 2024, https://arxiv.org/abs/2405.05588). For a task given by inputs ``x`` with
labels ``y``, the (empirical) diagonal Fisher information of a parameter θⱼ is the expected
squared score

    Fⱼ = E₍ₓ,ᵧ₎ [ (∂ log p(y | x; θ) / ∂θⱼ)² ],

and a layer's Fisher information is the mean of Fⱼ over its parameters. TL-DMI computes it
twice on one target: for the **classification task** on the private training images with
their labels, and for the **model-inversion task** on an MI attack's reconstructions with the
labels they were made for. Where a layer's Fisher information is high for inversion and low
for classification, that layer carries what the attack exploits without being needed for the
task — the paper's argument for pretraining the early layers on public data and freezing
them (the ``tl-dmi`` defense).

Layers are the classifier's blocks (:meth:`invbench.models.Classifier.blocks`, so a frozen
``tl-dmi`` block is one layer here) and a last ``head`` layer holding every parameter outside
them (the linear head; MID's bottleneck and decoder). Gradients are per sample (one backward
pass per image; the model stays in eval mode, so BatchNorm uses its running statistics and a
stochastic target is reseeded before each task). Frozen parameters are included: the
analysis switches ``requires_grad`` on for its own passes and restores it.

Example::

    from invbench.analysis.fisher import fisher_analysis

    result = fisher_analysis(model, private.x[:500], private.y[:500], rec.images, rec.labels)
    for layer in result.layers:
        print(layer.name, layer.classification, layer.inversion)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.errors import DataError
from invbench.models.stochastic import reseed
from invbench.progress import progress_bar

#: short names of the layers that hold parameters, for a block's label
_KINDS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.Conv2d, "conv"),
    (nn.Linear, "linear"),
    (nn.BatchNorm2d, "bn"),
    (nn.BatchNorm1d, "bn"),
    (nn.GroupNorm, "gn"),
    (nn.LayerNorm, "ln"),
)

#: the two tasks, in the order of the table's columns
TASKS = ("classification", "inversion")


@dataclass(frozen=True)
class FisherLayer:
    """One layer's diagonal Fisher information for both tasks (mean over its parameters)."""

    name: str
    parameters: int
    classification: float
    inversion: float

    @property
    def ratio(self) -> float:
        """Inversion over classification (``inf`` where classification's is zero)."""
        if self.classification == 0.0:
            return math.inf if self.inversion > 0.0 else math.nan
        return self.inversion / self.classification


@dataclass(frozen=True)
class FisherResult:
    """The per-layer table of :func:`fisher_analysis` and the sample sizes behind it."""

    layers: tuple[FisherLayer, ...]
    n_classification: int
    n_inversion: int

    def shares(self, task: str) -> list[float]:
        """Each layer's part of the task's total Fisher information (sums to 1).

        A layer's total is its mean times its parameter count, so the shares say where in
        the network a task's information sits, whatever the overall scale of the task.
        """
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        totals = [getattr(layer, task) * layer.parameters for layer in self.layers]
        s = sum(totals)
        return [t / s if s > 0 else math.nan for t in totals]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form: one dict per layer (means, shares, ratio) and the sample sizes."""
        cls_share, inv_share = self.shares("classification"), self.shares("inversion")
        return {
            "n_classification": self.n_classification,
            "n_inversion": self.n_inversion,
            "layers": [
                {
                    "layer": layer.name,
                    "parameters": layer.parameters,
                    "classification": layer.classification,
                    "inversion": layer.inversion,
                    "ratio": layer.ratio if math.isfinite(layer.ratio) else None,
                    "classification_share": cs,
                    "inversion_share": is_,
                }
                for layer, cs, is_ in zip(self.layers, cls_share, inv_share, strict=True)
            ],
        }


def _kinds(modules: list[nn.Module]) -> str:
    """``"conv+bn"``: the kinds of the modules that hold parameters, in order, once each."""
    kinds: list[str] = []
    for module in modules:
        if next(module.parameters(recurse=False), None) is None:
            continue
        kind = next((k for t, k in _KINDS if isinstance(module, t)), type(module).__name__.lower())
        if kind not in kinds:
            kinds.append(kind)
    return "+".join(kinds)


def fisher_layers(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """The model's layers as ``(name, parameters)``: its blocks in order, then ``head``.

    Names read ``"1 conv+bn"`` (block number and the kinds of layers with parameters in
    it); ``head`` holds every parameter outside the blocks. Blocks without parameters are
    left out.

    Raises:
        ConfigError: the model has no ``blocks()`` (a ``vit``, or a module that is not an
            invbench classifier).
    """
    from invbench.errors import ConfigError

    blocks_fn = getattr(model, "blocks", None)
    if not callable(blocks_fn):
        raise ConfigError(
            f"{type(model).__name__} has no blocks(): the Fisher analysis needs an invbench "
            "classifier (see invbench.models.make_classifier)"
        )
    out: list[tuple[str, list[nn.Parameter]]] = []
    seen: set[int] = set()
    for i, block in enumerate(blocks_fn()):
        params = [p for p in block.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            out.append((f"{i + 1} {_kinds(list(block.modules()))}", params))
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        ids = {id(p) for p in rest}
        owners = [m for m in model.modules()
                  if any(id(p) in ids for p in m.parameters(recurse=False))]
        out.append((f"head ({_kinds(owners)})", rest))
    return out


def _check_task(x: Tensor, y: Tensor, *, what: str, num_classes: int | None) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise DataError(f"{what}: images must be a float tensor (N, C, H, W), got "
                        f"{x.dtype} {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0] or y.is_floating_point():
        raise DataError(f"{what}: labels must be an integer tensor (N,) matching the "
                        f"{x.shape[0]} images, got {y.dtype} {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: no images")
    if not torch.isfinite(x).all():
        raise DataError(f"{what}: images contain NaN or infinite values")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise DataError(f"{what}: images must lie in [0, 1], got [{float(x.min()):.3g}, "
                        f"{float(x.max()):.3g}]")
    if num_classes is not None and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise DataError(f"{what}: labels must lie in 0..{num_classes - 1}, got "
                        f"{int(y.min())}..{int(y.max())}")


def diagonal_fisher(
    model: nn.Module,
    layers: list[tuple[str, list[nn.Parameter]]],
    x: Tensor,
    y: Tensor,
    *,
    device: torch.device | str = "cpu",
    description: str = "fisher",
    quiet: bool = False,
) -> list[float]:
    """Mean over each layer's parameters of E[(∂ log p(y|x) / ∂θ)²], one backward per image.

    ``model`` must already be in the state to analyse (eval mode, on ``device``); ``layers``
    comes from :func:`fisher_layers`. Returns one float per layer.
    """
    params = [p for _, ps in layers for p in ps]
    sizes = [sum(p.numel() for p in ps) for _, ps in layers]
    owner = [i for i, (_, ps) in enumerate(layers) for _ in ps]
    sums = torch.zeros(len(layers), dtype=torch.float64)
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        with progress_bar(x.shape[0], description, quiet=quiet) as bar:
            for i in range(x.shape[0]):
                xi = x[i : i + 1].to(device)
                logp = F.log_softmax(model(xi), dim=1)[0, int(y[i])]
                grads = torch.autograd.grad(logp, params, allow_unused=True)
                for j, g in enumerate(grads):
                    if g is not None:
                        sums[owner[j]] += g.detach().double().square().sum().cpu()
                bar.advance()
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
    n = x.shape[0]
    return [float(s) / (n * size) for s, size in zip(sums.tolist(), sizes, strict=True)]


def fisher_analysis(
    model: nn.Module,
    private_x: Tensor,
    private_y: Tensor,
    recon_x: Tensor,
    recon_y: Tensor,
    *,
    device: torch.device | str = "cpu",
    seed: int = 0,
    quiet: bool = False,
) -> FisherResult:
    """Per-layer diagonal Fisher information of the classification and inversion tasks.

    Args:
        model: the target (an invbench classifier, or MID's ``VIBClassifier``); put in eval
            mode and moved to ``device`` here.
        private_x, private_y: the classification task: private training images in [0, 1]
            (N, C, H, W) and their labels.
        recon_x, recon_y: the inversion task: an attack's reconstructions and the labels
            they were made for.
        seed: reseeds a stochastic target before each task, so the result is reproducible.

    Raises:
        DataError: malformed images or labels (shape, range, NaN).
        ConfigError: a model without blocks (see :func:`fisher_layers`).
    """
    k = getattr(model, "num_classes", None)
    _check_task(private_x, private_y, what="private images", num_classes=k)
    _check_task(recon_x, recon_y, what="reconstructions", num_classes=k)
    if tuple(private_x.shape[1:]) != tuple(recon_x.shape[1:]):
        raise DataError(f"reconstructions are {tuple(recon_x.shape[1:])} images, the private "
                        f"images {tuple(private_x.shape[1:])}")
    model = model.to(device).eval()
    layers = fisher_layers(model)
    values = {}
    for task, x, y in (("classification", private_x, private_y),
                       ("inversion", recon_x, recon_y)):
        reseed(model, seed)
        values[task] = diagonal_fisher(
            model, layers, x, y, device=device, description=f"fisher: {task}", quiet=quiet
        )
    reseed(model, seed)
    rows = tuple(
        FisherLayer(name, sum(p.numel() for p in ps), c, v)
        for (name, ps), c, v in zip(layers, values["classification"], values["inversion"],
                                    strict=True)
    )
    return FisherResult(rows, int(private_x.shape[0]), int(recon_x.shape[0]))
