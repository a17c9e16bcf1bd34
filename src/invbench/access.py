"""Threat models, enforced: what an attack may do with the target.

The runner wraps the trained target in exactly the access object its attack declares:

* :class:`WhiteBox` — the module itself: differentiable logits and gradients.
* :class:`BlackBox` — probability vectors only (after an optional output processing such as
  rounding or top-k, which is where a deployment would put an output-processing defense).
* :class:`LabelOnly` — the top-1 label only.

The two query-only levels are clients of a :class:`~invbench.serving.service.TargetService`
that holds the target, counts the queries and enforces the budget on its side. The runner
serves the target from its own process to the attack running in a spawned worker
(:mod:`invbench.serving.worker`), so a black-box attack's process never holds the module;
an endpoint on this machine (``invbench serve``) is reached the same way over HTTP. Each
counts queries (one per image) and can enforce a budget, raising
:class:`~invbench.errors.QueryBudgetExceeded` when an attack asks for more.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from invbench.errors import AccessError
from invbench.serving.channels import Channel, LocalChannel
from invbench.serving.codec import decode, encode
from invbench.serving.service import (
    MAX_BATCH,
    TargetService,
    check_query_shape,
    raise_if_error,
    spend,
)

AccessLevel = Literal["white-box", "black-box", "label-only"]
LEVELS: tuple[str, ...] = ("white-box", "black-box", "label-only")  # strongest first

#: the deployment's processing of probability vectors, ``f(probs, seeds=...) -> probs``
#: (:class:`invbench.defenses.output.OutputProcessing`)
OutputTransform = Callable[..., Tensor]


def _module_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def model_fingerprint(model: nn.Module) -> str:
    """A hash (32 hex chars) of a module's class, parameters and buffers: its identity.

    Two modules with the same class and state give the same fingerprint, whatever object
    holds them. Used in the cache keys of priors that were learned by querying a target.
    """
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


class Access:
    """Base of the three access levels: query counting, budget, input checks."""

    level: ClassVar[str] = ""

    def __init__(
        self,
        *,
        num_classes: int,
        image_shape: tuple[int, int, int],
        device: torch.device,
        budget: int | None = None,
        target_key: str | None = None,
        fingerprint: Callable[[], str] | None = None,
    ) -> None:
        if budget is not None and budget < 1:
            raise AccessError(f"query budget must be a positive integer, got {budget}")
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.device = torch.device(device)
        self.budget = budget
        self.queries = 0
        self._target_key = target_key
        self._fingerprint_fn = fingerprint

    def fingerprint(self) -> str:
        """The target's identity for cache keys of priors that queried it.

        The ``target_key`` given at construction (the runner passes the target's cache key),
        else a hash of the target's weights (:func:`model_fingerprint`), computed once. It
        reveals nothing about the weights.
        """
        if self._target_key is None:
            if self._fingerprint_fn is None:
                raise AccessError(
                    f"this {self.level} access has no target identity; pass target_key="
                )
            self._target_key = self._fingerprint_fn()
        return self._target_key

    def charge(self, n: int) -> None:
        """Count ``n`` queries spent elsewhere against the budget.

        A prior loaded from the cache was built with queries to this target; charging them
        makes a warm run report, and be limited by, the same numbers as a cold one.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise AccessError(f"charge: n must be an int >= 0, got {n!r}")
        self._spend(n)

    def _spend(self, n: int) -> None:
        self.queries = spend(self.level, self.budget, self.queries, n)

    def _count(self, x: Tensor) -> None:
        check_query_shape(self.level, self.image_shape, x)
        self._spend(int(x.shape[0]))

    @staticmethod
    def allows(granted: str, needed: str) -> bool:
        """Whether access ``granted`` is at least as strong as ``needed``."""
        return LEVELS.index(granted) <= LEVELS.index(needed)


class WhiteBox(Access):
    """Full access: the module, its parameters and gradients.

    ``access.logits(x)`` is differentiable w.r.t. ``x``; the model is kept in eval mode.
    """

    level: ClassVar[str] = "white-box"

    def __init__(
        self,
        model: nn.Module,
        *,
        num_classes: int,
        image_shape: tuple[int, int, int],
        budget: int | None = None,
        target_key: str | None = None,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            image_shape=image_shape,
            device=_module_device(model),
            budget=budget,
            target_key=target_key,
            fingerprint=lambda: model_fingerprint(model),
        )
        self.model = model.eval()

    def logits(self, x: Tensor) -> Tensor:
        """Differentiable logits (N, K) for images (N, C, H, W); counts N queries."""
        self._count(x)
        return self.model(x)

    __call__ = logits

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits (N, K) and penultimate features ``model.features(x)`` (N, D), both
        differentiable; counts N queries (the features are read from the same forward).

        With a ``feature_module`` on the model (invbench's classifiers and MID's
        ``VIBClassifier``) the features are captured from that module during the one
        forward pass; otherwise ``model.features`` runs a second pass.
        """
        module = getattr(self.model, "feature_module", None)
        if not isinstance(module, nn.Module):
            return self.logits(x), self.model.features(x)  # type: ignore[operator]
        seen: list[Tensor] = []
        handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            logits = self.logits(x)
        finally:
            handle.remove()
        if len(seen) != 1:
            raise RuntimeError(
                f"the target's feature_module ran {len(seen)} times in one forward, expected 1"
            )
        return logits, seen[0]

    def predict_proba(self, x: Tensor) -> Tensor:
        """Probability vectors (N, K), not differentiable; counts N queries."""
        with torch.inference_mode():
            return torch.softmax(self.logits(x), dim=1)

    def predict_label(self, x: Tensor) -> Tensor:
        """Top-1 labels (N,); counts N queries."""
        with torch.inference_mode():
            return self.logits(x).argmax(dim=1)


class _QueryAccess(Access):
    """Query-only access: a client of a :class:`~invbench.serving.service.TargetService`.

    It holds a channel (:mod:`invbench.serving.channels`), never the module: the service on
    the other end counts the queries and enforces the budget; :attr:`queries` mirrors its
    count after every answer. Answers come back on :attr:`device`.
    """

    def __init__(self, channel: Channel, *, device: torch.device | str | None = None) -> None:
        self._channel = channel
        info = self._call({}, {"op": "info"})
        #: the level the target is served at (label-only access to a black-box service
        #: reads the top-1 of its answers)
        self.served_level = str(info.get("level"))
        if not (self.served_level == self.level
                or (self.level == "label-only" and self.served_level == "black-box")):
            raise AccessError(
                f"the target is served with {self.served_level} access, not {self.level}"
            )
        super().__init__(
            num_classes=int(info["num_classes"]),  # type: ignore[call-overload]
            image_shape=tuple(info["image_shape"]),  # type: ignore[arg-type]
            device=torch.device(device if device is not None else str(info.get("device", "cpu"))),
            budget=info.get("budget"),  # type: ignore[arg-type]
            target_key=str(info.get("target_key") or "") or None,
        )
        self.queries = int(info.get("queries", 0))  # type: ignore[call-overload]
        #: how many versions of the model the service answers for (1 + its updates; see
        #: :class:`~invbench.serving.service.TargetService`); queries name one with ``version``
        self.versions = int(info.get("versions", 1))  # type: ignore[call-overload]

    @classmethod
    def local(
        cls,
        model: nn.Module,
        *,
        num_classes: int,
        image_shape: tuple[int, int, int],
        output_transform: OutputTransform | None = None,
        budget: int | None = None,
        target_key: str | None = None,
        seed: int = 0,
        updates: tuple[nn.Module, ...] | list[nn.Module] = (),
    ) -> _QueryAccess:
        """Access to ``model`` served in this process (the Python API's convenience).

        Not a barrier — the runner serves the target to an attack in another process
        (:mod:`invbench.serving.worker`). ``target_key`` defaults to a hash of the weights.
        ``updates``: later versions of the model (an online-learning deployment; queries
        pick one with ``version=``).
        """
        service = TargetService(
            model, level=cls.level, num_classes=num_classes, image_shape=image_shape,
            output=output_transform, budget=budget,
            target_key=target_key if target_key is not None else model_fingerprint(model),
            seed=seed, updates=updates,
        )
        return cls(LocalChannel(service))

    def _call(self, tensors: dict[str, Tensor], meta: dict[str, object]) -> dict[str, object]:
        return self._exchange(tensors, meta)[1]

    def _exchange(
        self, tensors: dict[str, Tensor], meta: dict[str, object]
    ) -> tuple[dict[str, Tensor], dict[str, object]]:
        out, answer = decode(self._channel.request(encode(tensors, meta)))
        if "queries" in answer and hasattr(self, "queries"):
            self.queries = int(answer["queries"])
        raise_if_error(answer)
        return out, answer

    def charge(self, n: int) -> None:
        """Count ``n`` queries spent elsewhere against the budget (on the serving side)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise AccessError(f"charge: n must be an int >= 0, got {n!r}")
        self._call({}, {"op": "charge", "n": n})

    def _answer(self, x: Tensor, key: str, version: int = 0) -> Tensor:
        check_query_shape(self.level, self.image_shape, x)
        if isinstance(version, bool) or not isinstance(version, int) or not (
                0 <= version < self.versions):
            raise AccessError(f"{self.level} query: version must be an integer in "
                              f"[0, {self.versions - 1}], got {version!r}")
        x = x.detach().to("cpu", torch.float32)
        meta: dict[str, object] = {"op": "query"}
        if version:
            meta["version"] = version
        parts = [
            self._exchange({"images": chunk}, meta)[0][key]
            for chunk in x.split(MAX_BATCH)
        ]
        return torch.cat(parts).to(self.device)


class BlackBox(_QueryAccess):
    """Query access to probability vectors (after the deployment's output processing).

    No module, no gradients: a client of the service that holds the target. Build it from a
    channel, or with :meth:`local` around a module in this process (API convenience).
    """

    level: ClassVar[str] = "black-box"

    def predict_proba(self, x: Tensor, *, version: int = 0) -> Tensor:
        """Probability vectors (N, K), not differentiable; counts N queries.

        ``version``: which version of an updated model answers (0: as first deployed).
        """
        return self._answer(x, "probs", version)

    __call__ = predict_proba

    def predict_label(self, x: Tensor, *, version: int = 0) -> Tensor:
        """Top-1 labels (N,); counts N queries."""
        return self.predict_proba(x, version=version).argmax(dim=1)


class LabelOnly(_QueryAccess):
    """Query access to the top-1 label only (of the processed probabilities, if any)."""

    level: ClassVar[str] = "label-only"

    def predict_label(self, x: Tensor, *, version: int = 0) -> Tensor:
        """Top-1 labels (N,); counts N queries (``version``: as for :class:`BlackBox`)."""
        if self.served_level == "black-box":
            return self._answer(x, "probs", version).argmax(dim=1)
        return self._answer(x, "labels", version)

    __call__ = predict_label


def served_target_key(base: str, output: OutputTransform | None) -> str:
    """The identity of a target as served: ``base`` plus its output processing, if any.

    The processing is part of the target's identity for caches: a prior that queried the
    processed target is not the one that queried the raw target.
    """
    if output is None:
        return base
    described = getattr(output, "describe", None)
    tag = described() if callable(described) else repr(output)
    return f"{base}|output={tag}"


def make_access(
    level: str,
    model: nn.Module,
    *,
    num_classes: int,
    image_shape: tuple[int, int, int],
    budget: int | None = None,
    output_transform: OutputTransform | None = None,
    target_key: str | None = None,
) -> Access:
    """Wrap ``model`` in the access object for ``level`` (what the runner hands an attack).

    ``target_key`` names the target for cache keys (:meth:`Access.fingerprint`); without it
    the fingerprint is a hash of the model's weights.
    """
    if output_transform is not None and level in LEVELS[1:]:
        base = target_key if target_key is not None else model_fingerprint(model)
        target_key = served_target_key(base, output_transform)
    if level == "white-box":
        if output_transform is not None:
            raise AccessError(
                "output processing protects only black-box and label-only queries; a "
                "white-box attacker reads the logits directly"
            )
        return WhiteBox(model, num_classes=num_classes, image_shape=image_shape, budget=budget,
                        target_key=target_key)
    cls = {"black-box": BlackBox, "label-only": LabelOnly}.get(level)
    if cls is None:
        raise AccessError(f"unknown access level '{level}'; choose one of: {', '.join(LEVELS)}")
    return cls.local(model, num_classes=num_classes, image_shape=image_shape,
                     output_transform=output_transform, budget=budget, target_key=target_key)
