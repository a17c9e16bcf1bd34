"""The evaluation model: an independent classifier that judges reconstructions.

Protocol of GMI (Zhang et al., "The Secret Revealer: Generative Model-Inversion Attacks
Against Deep Neural Networks", CVPR 2020, https://arxiv.org/abs/1911.07135) and MIBench:
attack accuracy is measured by a classifier of a *different architecture* from the target,
trained independently (own seed, with augmentation) on the same private training data. A
reconstruction that fools only the target (an adversarial example) is not counted as a
success; one that the evaluator also recognises is. The evaluator is only as good as its own
accuracy on held-out private images, so :attr:`Evaluator.accuracy` is always reported with
the attack scores.

Its penultimate features are the space of GMI's "KNN Dist"; the private training features
are computed once per evaluator and protocol, memoised, and optionally cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from invbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from invbench.bench.cache import Cache
    from invbench.data.protocol import Protocol

_FEATURE_KIND = "evaluator-features"


def derive_seed(seed: int, tag: str) -> int:
    """A 31-bit seed determined by ``(seed, tag)``; differs from ``seed`` for every tag.

    Example: ``derive_seed(0, "eval")`` seeds the evaluator of a run whose target uses seed 0.
    """
    digest = hashlib.sha256(f"{int(seed)}:{tag}".encode()).digest()
    out = int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
    return out if out != int(seed) else (out + 1) & 0x7FFFFFFF


def _module_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


class Evaluator:
    """An evaluation classifier with batched, gradient-free logits and features.

    Args:
        model: a classifier with ``features(x) -> (B, D)`` and ``forward(x) -> (B, k)``
            logits, taking images in [0, 1] (see :class:`invbench.models.Classifier`).
        arch: architecture name (reported with the scores).
        num_classes: number of private classes ``k`` (the model's output width).
        image_shape: ``(C, H, W)`` of the protocol's images.
        accuracy: top-1 accuracy on the protocol's ``private_test`` split, in [0, 1].
        batch_size: images per forward pass in :meth:`logits` / :meth:`features`.
        cache: optional :class:`~invbench.bench.cache.Cache` for private features.
        cache_key: the evaluator's own cache key (set by :func:`train_evaluator`); private
            features are cached only when both ``cache`` and ``cache_key`` are given.
        name: how reports call it (``acc1_<name>``); default ``arch`` (``"robust"`` for the
            adversarially trained one).

    Example::

        ev = train_evaluator(protocol, seed=0)
        print(ev.arch, ev.accuracy)          # "resnet", 0.98...
        pred = ev.logits(images).argmax(1)   # images: (N, C, H, W) in [0, 1]
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        arch: str,
        num_classes: int,
        image_shape: tuple[int, int, int],
        accuracy: float,
        batch_size: int = 512,
        cache: Cache | None = None,
        cache_key: str | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(getattr(model, "features", None)):
            raise ConfigError(
                f"evaluator model {type(model).__name__} needs a features(x) method "
                "(penultimate features); use invbench.models.make_classifier"
            )
        if batch_size < 1:
            raise ConfigError(f"evaluator batch_size must be >= 1, got {batch_size}")
        self.model = model.eval().requires_grad_(False)
        self.arch = str(arch)
        #: the evaluator's name in reports (``acc1_<name>``); default: its arch
        self.name = str(name) if name is not None else self.arch
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.accuracy = float(accuracy)
        self.batch_size = int(batch_size)
        self.cache = cache
        self.cache_key = cache_key
        self._private: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def device(self) -> torch.device:
        """The device the evaluation model lives on (outputs are returned there)."""
        return _module_device(self.model)

    def __repr__(self) -> str:
        return (
            f"Evaluator(arch={self.arch!r}, num_classes={self.num_classes}, "
            f"accuracy={self.accuracy:.4f})"
        )

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise DataError(
                f"evaluator: expected images of shape (N, {', '.join(map(str, self.image_shape))}),"
                f" got {got}"
            )

    def _batched(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        self._check(x)
        dev = self.device
        outs = []
        with torch.inference_mode():
            for i in range(0, max(x.shape[0], 1), self.batch_size):  # one pass when empty
                xb = x[i : i + self.batch_size].to(dev, dtype=torch.float32, non_blocking=True)
                outs.append(fn(xb).float())
        return torch.cat(outs)

    def logits(self, x: Tensor) -> Tensor:
        """Logits ``(N, num_classes)`` on :attr:`device` for images ``(N, C, H, W)`` in [0, 1]."""
        return self._batched(self.model, x)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, D)`` on :attr:`device` for images ``(N, C, H, W)``."""
        return self._batched(self.model.features, x).flatten(1)

    def private_features(self, protocol: Protocol) -> tuple[Tensor, Tensor]:
        """Features and labels of ``protocol.private_train``: ``(N, D)`` and ``(N,)``, on device.

        Computed once per protocol (memoised on this evaluator by the protocol's fingerprint)
        and, when the evaluator has a cache, stored there with ``save_tensors``.
        """
        fp = protocol.fingerprint()
        dev = self.device
        hit = self._private.get(fp)
        if hit is not None:
            return hit[0].to(dev), hit[1].to(dev)
        key = None
        if self.cache is not None and self.cache_key is not None:
            key = self.cache.key({"evaluator": self.cache_key, "protocol": fp})
            loaded = self.cache.load_tensors(_FEATURE_KIND, key)
            if loaded is not None:
                tensors, _meta = loaded
                feats, labels = tensors.get("features"), tensors.get("labels")
                if (
                    feats is not None
                    and labels is not None
                    and feats.shape[0] == len(protocol.private_train)
                    and torch.equal(labels.long(), protocol.private_train.y.long())
                ):
                    out = (feats.to(dev).float(), labels.to(dev).long())
                    self._private[fp] = out
                    return out
        feats = self.features(protocol.private_train.x)
        labels = protocol.private_train.y.to(dev).long()
        if key is not None and self.cache is not None:
            self.cache.save_tensors(
                _FEATURE_KIND,
                key,
                {"features": feats.detach().cpu().contiguous(), "labels": labels.cpu()},
                {"arch": self.arch, "protocol": fp, "n": int(feats.shape[0])},
            )
        self._private[fp] = (feats, labels)
        return feats, labels


def train_evaluator(
    protocol: Protocol,
    *,
    arch: str | None = None,
    seed: int = 0,
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 1e-3,
    device: torch.device | str = "cpu",
    cache: Cache | None = None,
    quiet: bool = True,
) -> Evaluator:
    """Train (or load from ``cache``) the evaluation model for ``protocol``.

    The evaluator is a classifier of the evaluation family (default
    :func:`invbench.models.evaluator_arch`, a small residual net), trained on
    ``protocol.private_train`` with random-shift augmentation and a seed derived from
    ``(seed, "eval")``, so it never shares the target's initialisation. Its top-1 accuracy on
    ``protocol.private_test`` is :attr:`Evaluator.accuracy`.

    Args:
        protocol: the private/public split (its fingerprint is part of the cache key).
        arch: evaluation architecture ("resnet", "mlp"); a target-family arch ("auto",
            "cnn-*") is refused with a :class:`ConfigError`.
        seed: the run's seed (the evaluator uses ``derive_seed(seed, "eval")``).
        epochs, batch_size, lr: Adam training schedule.
        device: where to train and run the evaluator.
        cache: a :class:`~invbench.bench.cache.Cache`; kind ``"evaluator"``.
        quiet: silence the training progress bar.

    Example::

        ev = train_evaluator(protocol, seed=0, epochs=40, cache=Cache(".invbench-cache"))
        assert ev.accuracy > 0.95
    """
    from invbench.models import EVALUATOR_ARCHS, TARGET_ARCHS, evaluator_arch, make_classifier
    from invbench.training import evaluate_accuracy, train_classifier

    shape = tuple(protocol.image_shape)
    chosen = evaluator_arch(shape) if arch is None else str(arch)
    if chosen not in EVALUATOR_ARCHS:
        why = "is a target architecture" if chosen in TARGET_ARCHS else "is not an evaluator arch"
        raise ConfigError(
            f"evaluator arch '{chosen}' {why}; the evaluation model must differ from the "
            f"target, choose one of: {', '.join(EVALUATOR_ARCHS)}"
        )
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ConfigError(f"evaluator {name} must be >= 1, got {value}")
    if not lr > 0:
        raise ConfigError(f"evaluator lr must be > 0, got {lr}")
    eval_seed = derive_seed(seed, "eval")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(eval_seed)
        model = make_classifier(chosen, image_shape=shape, num_classes=protocol.num_classes)

    def fit() -> dict[str, object]:
        train_classifier(
            model,
            protocol.private_train.x,
            protocol.private_train.y,
            epochs=int(epochs),
            batch_size=int(batch_size),
            lr=float(lr),
            augment=True,
            seed=eval_seed,
            device=device,
            quiet=quiet,
            desc=f"train evaluator ({chosen})",
        )
        return {"arch": chosen, "eval_seed": eval_seed}

    key = None
    if cache is not None:
        parts = {
            "role": "evaluator",
            "protocol": protocol.fingerprint(),
            "arch": chosen,
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "lr": float(lr),
            "augment": True,
            "seed": int(seed),
        }
        key = cache.key(parts)
        cache.get_or_create("evaluator", parts, {"model": model}, fit)
    else:
        fit()
    model.to(device).eval()
    acc = evaluate_accuracy(model, protocol.private_test.x, protocol.private_test.y, device=device)
    return Evaluator(
        model,
        arch=chosen,
        num_classes=protocol.num_classes,
        image_shape=shape,
        accuracy=acc,
        cache=cache,
        cache_key=key,
    )
