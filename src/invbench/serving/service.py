"""The serving side of black-box and label-only access: the one object that holds the target.

:class:`TargetService` owns the module and answers encoded queries (:mod:`.codec`): a batch
of images in, probability vectors (black-box) or top-1 labels (label-only) out, after the
deployment's output processing. It counts every query and enforces the budget itself, so a
client cannot under-report. It lives in the process that serves the target — the runner,
answering an attack that runs in a spawned worker (:mod:`.worker`), or ``invbench serve``
over loopback HTTP (:mod:`.http`) — never in the attack's process.

**Answers do not depend on batching.** A stochastic target (MID's sampled bottleneck) and
the ``noise`` output processing draw their randomness from a seed per *query*: a hash of the
image's bytes and the service's seed. The same image gets the same answer whether it is
asked alone or inside any batch, and asking it again does not average the noise away.

Example::

    service = TargetService(model, level="black-box", num_classes=5, image_shape=(1, 8, 8))
    answer = service.handle(encode({"images": x}, {"op": "query"}))
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from invbench.errors import AccessError, DataError, InvbenchError, QueryBudgetExceeded
from invbench.models.stochastic import is_stochastic, reseed
from invbench.serving.codec import decode, encode

#: the query-only access levels a service can answer
SERVED_LEVELS = ("black-box", "label-only")

#: the most images one query message may carry (clients split larger batches)
MAX_BATCH = 4096

#: error kinds on the wire -> the exception a client raises
ERRORS: dict[str, type[InvbenchError]] = {
    "budget": QueryBudgetExceeded,
    "access": AccessError,
    "data": DataError,
    "server": InvbenchError,
}


def spend(level: str, budget: int | None, used: int, n: int) -> int:
    """``used + n`` queries, or :class:`QueryBudgetExceeded` if that passes ``budget``.

    The one budget rule of every access level (the service's and a white-box access's).
    """
    if budget is not None and used + n > budget:
        raise QueryBudgetExceeded(
            f"{level} query budget of {budget} exceeded ({used} used, {n} more asked)"
        )
    return used + n


def check_query_shape(level: str, image_shape: tuple[int, ...], x: Tensor) -> None:
    """Raise :class:`AccessError` unless ``x`` is a batch ``(N, *image_shape)``."""
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(image_shape):
        raise AccessError(
            f"{level} query: expected images of shape "
            f"(N, {', '.join(map(str, image_shape))}), got {tuple(x.shape)}"
        )


def query_seeds(x: Tensor, seed: int) -> Tensor:
    """One 63-bit seed per image: a keyed hash of the image's float32 bytes (N,) int64."""
    rows = x.detach().to("cpu", torch.float32).contiguous().reshape(x.shape[0], -1).numpy()
    key = int(seed).to_bytes(8, "little", signed=False)
    out = [
        int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=8, key=key).digest(), "little")
        & (2**63 - 1)
        for r in rows
    ]
    return torch.tensor(out, dtype=torch.int64)


def seeded_logits(model: nn.Module, x: Tensor, seeds: Tensor | None) -> Tensor:
    """The model's logits with each row's randomness drawn from its own seed.

    A deterministic model is one batched pass. A stochastic one uses its
    ``predict_seeded(x, seeds)`` when it has one (MID's ``VIBClassifier``: one backbone pass),
    else one reseeded pass per image.
    """
    if not is_stochastic(model):
        return model(x)
    assert seeds is not None, "a stochastic model needs per-query seeds"
    fast = getattr(model, "predict_seeded", None)
    if callable(fast):
        return fast(x, seeds)  # type: ignore[no-any-return]
    rows = []
    for i in range(x.shape[0]):
        reseed(model, int(seeds[i]))
        rows.append(model(x[i : i + 1]))
    return torch.cat(rows)


class TargetService:
    """A target answering query-only access: counts, budget, output processing, seeding.

    Args:
        model: the target (kept in eval mode; it never leaves this object).
        level: ``"black-box"`` (probability vectors) or ``"label-only"`` (top-1 labels).
        num_classes, image_shape: what clients are told and queries are checked against.
        output: the deployment's output processing of the probabilities (``top-k``,
            ``round``, ``noise``: :mod:`invbench.defenses.output`), or ``None``. A label-only
            answer is the top-1 of the processed probabilities.
        budget: most queries served (all clients together), or ``None``.
        target_key: the target's identity for cache keys of priors that query it.
        seed: keys the per-query seeds (see the module docstring).
        updates: the deployment's later versions of the model (an online-learning service
            that fine-tuned it on new data: :func:`invbench.training.apply_update`). A query
            names the version it asks (``version``: 0 the model as first deployed, ``i`` the
            one after the ``i``-th update); every version shares the one budget and count.

    ``handle(bytes) -> bytes`` never raises: a bad request or an exhausted budget comes back
    as an error message the client turns into the matching exception.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        level: str,
        num_classes: int,
        image_shape: tuple[int, int, int],
        output: Callable[..., Tensor] | None = None,
        budget: int | None = None,
        target_key: str = "",
        seed: int = 0,
        updates: Sequence[nn.Module] = (),
    ) -> None:
        if level not in SERVED_LEVELS:
            raise AccessError(
                f"a served target answers {' or '.join(SERVED_LEVELS)} queries, not {level!r}"
                " (a white-box attacker needs the module itself)"
            )
        if budget is not None and budget < 1:
            raise AccessError(f"query budget must be a positive integer, got {budget}")
        self._models = [model.eval(), *(m.eval() for m in updates)]
        self._device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.level = level
        self.num_classes = int(num_classes)
        self.image_shape = tuple(int(s) for s in image_shape)
        self._output = output
        self.budget = budget
        self.target_key = target_key
        self.seed = int(seed)
        self.queries = 0
        self._seeded = is_stochastic(model) or output is not None
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        """What a client learns on connecting: level, shapes, budget, queries, identity."""
        return {
            "level": self.level,
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "budget": self.budget,
            "queries": self.queries,
            "target_key": self.target_key,
            "device": self._device.type,
            "versions": len(self._models),
        }

    def _spend(self, n: int) -> None:
        self.queries = spend(self.level, self.budget, self.queries, n)

    def answer(self, x: Tensor, version: int = 0) -> Tensor:
        """Answer images ``x`` (N, C, H, W): probabilities (N, K) or labels (N,); counts N.

        ``version`` picks the model version (0: as first deployed; see ``updates``).
        """
        if isinstance(version, bool) or not isinstance(version, int) or not (
                0 <= version < len(self._models)):
            raise DataError(f"{self.level} query: version must be an integer in "
                            f"[0, {len(self._models) - 1}], got {version!r}")
        check_query_shape(self.level, self.image_shape, x)
        if not x.is_floating_point():
            raise DataError(f"{self.level} query: images must be float, got {x.dtype}")
        if x.shape[0] > MAX_BATCH:
            raise DataError(f"{self.level} query: at most {MAX_BATCH} images per message, "
                            f"got {x.shape[0]}")
        if not torch.isfinite(x).all():
            raise DataError(f"{self.level} query: images contain NaN or Inf")
        with self._lock:
            self._spend(int(x.shape[0]))
            # per-query seeds only where randomness needs them (hashing every image costs)
            seeds = query_seeds(x, self.seed) if self._seeded else None
            with torch.inference_mode():
                model = self._models[version]
                logits = seeded_logits(model, x.to(self._device, torch.float32), seeds)
                probs = torch.softmax(logits.float(), dim=1)
                if self._output is not None:
                    probs = self._output(probs, seeds=seeds)
                out = probs if self.level == "black-box" else probs.argmax(dim=1)
            return out.to("cpu").clone()

    def charge(self, n: int) -> None:
        """Count ``n`` queries spent elsewhere (a cached prior's) against the budget."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise AccessError(f"charge: n must be an int >= 0, got {n!r}")
        with self._lock:
            self._spend(n)

    def handle(self, request: bytes) -> bytes:
        """Answer one encoded request (``op``: ``info``, ``query`` or ``charge``)."""
        try:
            tensors, meta = decode(request)
            op = meta.get("op")
            if op == "info":
                return encode({}, self.info())
            if op == "query":
                if "images" not in tensors:
                    raise DataError("query message has no 'images' tensor")
                out = self.answer(tensors["images"], meta.get("version", 0))  # type: ignore[arg-type]
                key = "probs" if self.level == "black-box" else "labels"
                return encode({key: out}, {"queries": self.queries})
            if op == "charge":
                self.charge(meta.get("n"))  # type: ignore[arg-type]
                return encode({}, {"queries": self.queries})
            raise DataError(f"unknown op {op!r}; expected info, query or charge")
        except InvbenchError as exc:
            kind = next((k for k, t in ERRORS.items() if type(exc) is t), "data")
            return encode({}, {"error": " ".join(str(exc).split()), "kind": kind,
                               "queries": self.queries})
        except Exception as exc:  # the target itself failed: the client gets one line
            text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            return encode({}, {"error": f"the target failed: {text}", "kind": "server",
                               "queries": self.queries})


def raise_if_error(meta: dict[str, Any]) -> None:
    """Raise the exception an error answer stands for (clients call it on every answer)."""
    if "error" in meta:
        cls = ERRORS.get(str(meta.get("kind")), DataError)
        raise cls(str(meta["error"]))
