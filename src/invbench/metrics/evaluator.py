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

A run trains several evaluators (:func:`train_evaluator` with ``name``): the standard one
(``resnet``), others of other families (``vit``, ``mlp``) and a *robust* one, adversarially
trained (``dense`` with PGD, :mod:`invbench.adversarial`), whose decisions and features
move little under adversarial perturbations made on the target. Each can judge with
test-time augmentation (``tta=True``: the softmax averaged over the image and its 1-px
shifts).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from invbench.adversarial import AdversarialTraining
    from invbench.cache import Cache
    from invbench.data.protocol import Protocol

_FEATURE_KIND = "evaluator-features"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")

#: (dy, dx) offsets of the test-time-augmentation views: the image and its 1-px shifts
TTA_SHIFTS: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))


def shift_views(x: Tensor) -> Tensor:
    """The :data:`TTA_SHIFTS` views of ``x`` (B, C, H, W), stacked: (len(TTA_SHIFTS) * B, C, H, W).

    View ``k`` is ``out[k * B : (k + 1) * B]``; a view shifted by ``(dy, dx)`` holds
    ``x[..., i + dy, j + dx]`` with the border pixels repeated (replicate padding), so no
    view brings in black borders an evaluator never saw.
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    views = [padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in TTA_SHIFTS]
    return torch.cat(views)


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
        cache: optional :class:`~invbench.cache.Cache` for private features.
        cache_key: the evaluator's own cache key (set by :func:`train_evaluator`); private
            features are cached only when both ``cache`` and ``cache_key`` are given.
        name: how reports call it (``acc1_<name>``); default ``arch`` (``"robust"`` for the
            adversarially trained one).
        adversarial: the adversarial-training settings it was trained with (None: standard
            training); reported, and part of its cache key.

    Example::

        ev = train_evaluator(protocol, seed=0)
        print(ev.arch, ev.accuracy)          # "resnet", 0.98...
        pred = ev.predict(images, tta=True)  # images: (N, C, H, W) in [0, 1]
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
        adversarial: AdversarialTraining | None = None,
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
        #: adversarial-training settings (None for a standard evaluator)
        self.adversarial = adversarial
        self._private: dict[str, tuple[Tensor, Tensor]] = {}

    @property
    def device(self) -> torch.device:
        """The device the evaluation model lives on (outputs are returned there)."""
        return _module_device(self.model)

    def __repr__(self) -> str:
        adv = "" if self.adversarial is None else f", adversarial={self.adversarial.describe()!r}"
        return (
            f"Evaluator(name={self.name!r}, arch={self.arch!r}, num_classes={self.num_classes}, "
            f"accuracy={self.accuracy:.4f}{adv})"
        )

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise DataError(
                f"evaluator: expected images of shape (N, {', '.join(map(str, self.image_shape))}),"
                f" got {got}"
            )

    def _batched(self, fn: Callable[[Tensor], Tensor], x: Tensor, *, views: int = 1) -> Tensor:
        """``fn`` over ``x`` in chunks; ``fn`` runs the model on ``views`` images per input."""
        self._check(x)
        dev = self.device
        step = max(1, self.batch_size // views)  # at most batch_size images per forward pass
        outs = []
        with torch.inference_mode():
            for i in range(0, max(x.shape[0], 1), step):  # one pass when empty
                xb = x[i : i + step].to(dev, dtype=torch.float32, non_blocking=True)
                outs.append(fn(xb).float())
        return torch.cat(outs)

    def _tta_log_probs(self, xb: Tensor) -> Tensor:
        views = len(TTA_SHIFTS)
        logp = torch.log_softmax(self.model(shift_views(xb)).float(), dim=1)
        logp = logp.view(views, xb.shape[0], logp.shape[1])
        return torch.logsumexp(logp, dim=0) - math.log(views)

    def logits(self, x: Tensor, *, tta: bool = False) -> Tensor:
        """Logits ``(N, num_classes)`` on :attr:`device` for images ``(N, C, H, W)`` in [0, 1].

        With ``tta=True`` (test-time augmentation) the softmax is averaged over the image and
        its four 1-px shifts (:func:`shift_views`, edge pixels repeated) and the log of that
        mean probability is returned: log-probabilities, ``exp`` sums to 1 per row. Each
        forward pass holds at most ``batch_size`` images (views included).
        """
        if tta:
            return self._batched(self._tta_log_probs, x, views=len(TTA_SHIFTS))
        return self._batched(self.model, x)

    def predict(self, x: Tensor, *, tta: bool = False) -> Tensor:
        """Predicted labels ``(N,)`` (long, on :attr:`device`) of images ``(N, C, H, W)``.

        The argmax of :meth:`logits` (with ``tta`` as there).

        Example::

            acc = (ev.predict(recon.images, tta=True).cpu() == recon.labels).float().mean()
        """
        return self.logits(x, tta=tta).argmax(1)

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
        if self.cache is None or self.cache_key is None:
            out = self._compute_private(protocol, None)
        else:
            key = self.cache.key({"evaluator": self.cache_key, "protocol": fp})
            with self.cache.lock(_FEATURE_KIND, key):  # one process computes, the rest load
                out = self._compute_private(protocol, key)
        self._private[fp] = out
        return out

    def _compute_private(self, protocol: Protocol, key: str | None) -> tuple[Tensor, Tensor]:
        """Load the private features from the cache entry ``key`` or compute (and save) them."""
        dev = self.device
        if key is not None and self.cache is not None:
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
                    return feats.to(dev).float(), labels.to(dev).long()
        feats = self.features(protocol.private_train.x)
        labels = protocol.private_train.y.to(dev).long()
        if key is not None and self.cache is not None:
            self.cache.save_tensors(
                _FEATURE_KIND,
                key,
                {"features": feats.detach().cpu().contiguous(), "labels": labels.cpu()},
                {"arch": self.arch, "protocol": protocol.fingerprint(),
                 "n": int(feats.shape[0])},
            )
        return feats, labels


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(
            f"evaluator name must be 1-40 letters, digits, '-' or '_' (it names the acc1_<name> "
            f"column), got {name!r}"
        )
    return name


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
    adversarial: AdversarialTraining | None = None,
    name: str | None = None,
) -> Evaluator:
    """Train (or load from ``cache``) an evaluation model for ``protocol``.

    The evaluator is a classifier of an evaluation family (default
    :func:`invbench.models.evaluator_arch`, a small residual net; never a target family),
    trained on ``protocol.private_train`` with random-shift augmentation and, with
    ``adversarial``, on adversarial examples (PGD, Madry et al. ICLR 2018; see
    :func:`invbench.adversarial.default_adversarial` for the settings per resolution). Its
    top-1 accuracy on the clean ``protocol.private_test`` is :attr:`Evaluator.accuracy`.

    Seeds: the default evaluator (``resnet``, named ``resnet``, standard training) uses
    ``derive_seed(seed, "eval")``; every other uses ``derive_seed(seed, f"eval:{name}")``,
    so each evaluator of a run gets its own initialisation and data order, and none shares
    the target's.

    Args:
        protocol: the private/public split (its fingerprint is part of the cache key).
        arch: evaluation architecture (``"resnet"``, ``"mlp"``, ``"vit"``, ``"dense"``); a
            target-family arch (``"auto"``, ``"cnn-*"``) is refused with a :class:`ConfigError`.
        seed: the run's seed (see above for the evaluator's own).
        epochs, batch_size, lr: Adam training schedule.
        device: where to train and run the evaluator.
        cache: a :class:`~invbench.cache.Cache`; kind ``"evaluator"``; the key holds the
            protocol, arch, name, schedule, seed and adversarial settings.
        quiet: silence the training progress bar.
        adversarial: adversarial-training settings (default None: standard training).
        name: how reports call it (``acc1_<name>``; letters, digits, ``-``, ``_``); default
            the arch. The lead's robust evaluator is ``name="robust"``.

    Raises:
        ConfigError: a target or unknown arch, a bad name, non-positive schedule values, or
            ``adversarial`` that is not an :class:`~invbench.adversarial.AdversarialTraining`.

    Example::

        ev = train_evaluator(protocol, seed=0, epochs=40, cache=Cache(".invbench-cache"))
        robust = train_evaluator(protocol, arch="dense", name="robust", seed=0,
                                 adversarial=default_adversarial(protocol.image_shape))
        assert ev.accuracy > 0.95
    """
    from invbench.adversarial import AdversarialTraining
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
    label = chosen if name is None else _check_name(name)
    if adversarial is not None and not isinstance(adversarial, AdversarialTraining):
        raise ConfigError(
            "evaluator adversarial must be an invbench.adversarial.AdversarialTraining or None, "
            f"got {type(adversarial).__name__}"
        )
    for what, value in (("epochs", epochs), ("batch_size", batch_size)):
        if int(value) < 1:
            raise ConfigError(f"evaluator {what} must be >= 1, got {value}")
    if not lr > 0:
        raise ConfigError(f"evaluator lr must be > 0, got {lr}")
    default = label == chosen == "resnet" and adversarial is None
    eval_seed = derive_seed(seed, "eval" if default else f"eval:{label}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(eval_seed)
        model = make_classifier(chosen, image_shape=shape, num_classes=protocol.num_classes)
    what = chosen if adversarial is None else f"{chosen}, {adversarial.describe()}"
    desc = f"train evaluator {label}" + ("" if what == label else f" ({what})")
    adv_parts = None if adversarial is None else adversarial.model_dump(mode="json")

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
            desc=desc,
            adversarial=adversarial,
        )
        return {"arch": chosen, "name": label, "eval_seed": eval_seed, "adversarial": adv_parts}

    key = None
    if cache is not None:
        parts = {
            "role": "evaluator",
            "protocol": protocol.fingerprint(),
            "arch": chosen,
            "name": label,
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "lr": float(lr),
            "augment": True,
            "seed": int(seed),
            "adversarial": adv_parts,
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
        name=label,
        adversarial=adversarial,
    )
