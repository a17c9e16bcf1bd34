"""Run a query-only attack in a spawned process that never holds the target.

:func:`run_isolated` is how the runner runs a black-box or label-only attack: it starts a
fresh Python interpreter (``python -m invbench.serving.worker``: not a fork, so nothing of
this process's memory — the target, the cache's other entries — is inherited), sends it
the job (the attack's class and parameters, the public split, its cache view, labels,
seed) and then answers the worker's
queries with the :class:`~.service.TargetService` it holds, until the worker sends back the
reconstruction. The worker builds its :class:`~invbench.access.BlackBox` /
:class:`~invbench.access.LabelOnly` on a :class:`~.channels.PipeChannel`: the only thing it
can do with the target is ask it questions, which the service counts and limits.

Everything crosses the pipe as :mod:`.codec` messages (safetensors bytes with a JSON
header), so neither side unpickles what the other sends. The worker's progress bars go to
the same stderr. An error in the worker comes back as the matching exception (an exhausted
budget as :class:`~invbench.errors.QueryBudgetExceeded`, naming the queries used).

``probe=True`` makes the worker report, after the attack, a fingerprint of every
``nn.Module`` and a hash of every tensor in its memory (``gc.get_objects()``): the barrier's
test checks that none is the target's.
"""

from __future__ import annotations

import hashlib
import importlib
import multiprocessing as mp
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invbench.errors import ConfigError, InvbenchError
from invbench.serving.codec import MAX_MESSAGE_BYTES, decode, encode
from invbench.serving.service import ERRORS, TargetService, raise_if_error
from invbench.types import Reconstruction, UpdateInference

#: seconds to wait for a finished worker to exit before it is terminated
_JOIN_SECONDS = 30.0


@dataclass
class IsolatedResult:
    """What an attack run in a worker returns."""

    #: an :class:`~invbench.attacks.base.Attack`'s reconstruction, or an
    #: :class:`~invbench.attacks.base.UpdateAttack`'s inference of the target's updates
    reconstruction: Reconstruction | UpdateInference
    prepare_queries: int
    timings: dict[str, float]
    probe: dict[str, Any] | None = field(default=None)


def tensor_hash(t: Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (what the probe compares)."""
    t = t.detach().to("cpu").contiguous()
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _attack_class_path(attack: object) -> tuple[str, str]:
    cls = type(attack)
    if "<locals>" in cls.__qualname__:
        raise ConfigError(
            f"attack class {cls.__qualname__} is defined inside a function; a black-box "
            "attack runs in a worker process, which imports its class by module and name"
        )
    return cls.__module__, cls.__qualname__


def run_isolated(
    attack: Any,
    service: TargetService,
    *,
    public: Any,
    labels: list[int],
    per_label: int,
    seed: int,
    cache_root: Path | None = None,
    cache_owner: str | None = None,
    device: str = "cpu",
    quiet: bool = True,
    probe: bool = False,
) -> IsolatedResult:
    """Prepare and invert ``attack`` in a spawned worker, serving ``service`` to it.

    Args:
        attack: a query-only :class:`~invbench.attacks.base.Attack` (its class must be
            importable by module and name; its parameters are sent, not the object).
        service: the target behind its access level; it stays in this process.
        public: the public :class:`~invbench.data.protocol.Split` (or ``None``).
        labels, per_label, seed: as for ``Attack.invert`` (``seed`` also seeds prepare); an
            :class:`~invbench.attacks.base.UpdateAttack` ignores ``labels`` and
            ``per_label`` and infers every update ``service`` serves.
        cache_root, cache_owner: the run's cache and the view the attack gets
            (``Cache(cache_root).view(cache_owner)``), or ``None`` for no cache.
        device: where the worker runs the attack (answers arrive there).
        probe: report what the worker holds in memory (for the barrier's test).

    Raises the worker's error as the matching :class:`~invbench.errors.InvbenchError`
    (``QueryBudgetExceeded`` for an exhausted budget), or a ``RuntimeError`` for any other
    failure of the attack.
    """
    module, qualname = _attack_class_path(attack)
    if service.level != attack.access:
        raise ConfigError(
            f"attack '{attack.name}' needs {attack.access} access; the service answers "
            f"{service.level} queries"
        )
    from invbench.attacks.base import UpdateAttack

    job: dict[str, Any] = {
        "mode": "update" if isinstance(attack, UpdateAttack) else "invert",
        "module": module,
        "qualname": qualname,
        "params": attack.get_params(),
        "level": service.level,
        "labels": [int(v) for v in labels],
        "per_label": int(per_label),
        "seed": int(seed),
        "cache_root": None if cache_root is None else str(cache_root),
        "cache_owner": cache_owner,
        "device": str(device),
        "quiet": bool(quiet),
        "probe": bool(probe),
        "threads": torch.get_num_threads(),
    }
    tensors = {} if public is None else {"public_x": public.x, "public_y": public.y}
    queries_parent, queries_child = mp.Pipe(duplex=True)  # socket pairs on POSIX
    control_parent, control_child = mp.Pipe(duplex=True)
    fds = (queries_child.fileno(), control_child.fileno())
    env = dict(os.environ)
    # the worker imports the attack's class by module and name: give it this process's path
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "invbench.serving.worker", *map(str, fds)],
        pass_fds=fds, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )
    queries_child.close()
    control_child.close()
    try:
        control_parent.send_bytes(encode(tensors, job))
        result = _serve_until_done(service, queries_parent, control_parent, proc)
    finally:
        try:
            proc.wait(_JOIN_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        queries_parent.close()
        control_parent.close()
    out, meta = decode(result)
    if meta.get("kind") == "attack":  # the attack's own failure, already "Type: message"
        raise InvbenchError(str(meta["error"]))
    raise_if_error(meta)
    rec: Reconstruction | UpdateInference
    if job["mode"] == "update":
        rec = UpdateInference(label_dist=out["label_dist"], images=out.get("images"),
                              queries=int(meta["queries"]))
    else:
        rec = Reconstruction(images=out["images"], labels=out["labels"], scores=out["scores"],
                             queries=int(meta["queries"]))
    return IsolatedResult(rec, int(meta["prepare_queries"]), dict(meta.get("timings", {})),
                          meta.get("probe"))


def _serve_until_done(
    service: TargetService, queries: Connection, control: Connection, proc: subprocess.Popen
) -> bytes:
    """Answer the worker's queries until its result arrives on ``control``."""
    open_queries = True
    while True:
        ready = wait([queries, control] if open_queries else [control])
        if queries in ready:
            try:
                request = queries.recv_bytes(MAX_MESSAGE_BYTES)
            except EOFError:
                open_queries = False
            else:
                queries.send_bytes(service.handle(request))
                continue
        if control in ready:
            try:
                return control.recv_bytes(MAX_MESSAGE_BYTES)
            except EOFError:
                code = proc.wait()
                raise RuntimeError(
                    f"the attack's worker process exited with code {code} before sending "
                    "a result"
                ) from None


def _probe() -> dict[str, Any]:
    """Fingerprints of every module and hashes of every tensor in this process."""
    import gc

    from torch import nn

    from invbench.access import model_fingerprint

    gc.collect()
    with warnings.catch_warnings():  # isinstance() on torch's deprecated lazy aliases warns
        warnings.simplefilter("ignore")
        objects = gc.get_objects()
        modules = [o for o in objects if isinstance(o, nn.Module)]
        tensors = [o for o in objects if isinstance(o, Tensor) and o.numel() > 0]
    for m in modules:  # parameters and buffers live in the modules' dicts, not in gc's list
        tensors.extend(m.parameters(recurse=False))
        tensors.extend(b for b in m.buffers(recurse=False) if b is not None)
    return {
        "modules": sorted({model_fingerprint(m) for m in modules}),
        "tensors": sorted({tensor_hash(t) for t in tensors}),
        "module_count": len(modules),
    }


def _worker_main(queries: Connection, control: Connection) -> None:  # pragma: no cover
    """The worker: build the attack and its query-only access, run it, send the result.

    (Runs in the worker process; covered through :func:`run_isolated` in the tests.)
    """
    access = None
    try:
        tensors, job = decode(control.recv_bytes(MAX_MESSAGE_BYTES))
        torch.set_num_threads(int(job["threads"]))
        from invbench.access import BlackBox, LabelOnly
        from invbench.cache import Cache
        from invbench.data.protocol import Split
        from invbench.serving.channels import PipeChannel

        cls = importlib.import_module(job["module"])
        for part in job["qualname"].split("."):
            cls = getattr(cls, part)
        attack = cls(**job["params"])  # type: ignore[operator]
        level_cls = {"black-box": BlackBox, "label-only": LabelOnly}[job["level"]]
        access = level_cls(PipeChannel(queries), device=job["device"])
        public = (Split(tensors["public_x"], tensors["public_y"])
                  if "public_x" in tensors else None)
        cache = (Cache(Path(job["cache_root"])).view(job["cache_owner"])
                 if job["cache_root"] else None)
        seed, quiet = int(job["seed"]), bool(job["quiet"])
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        attack.prepare(public, access=access, cache=cache, seed=seed, quiet=quiet)
        t1 = time.perf_counter()
        torch.manual_seed(seed)
        out: dict[str, Tensor]
        if job["mode"] == "update":
            inferred = attack.infer_updates(access, seed=seed, quiet=quiet)
            used = inferred.queries
            out = {"label_dist": inferred.label_dist}
            if inferred.images is not None:
                out["images"] = inferred.images
        else:
            rec = attack.invert(access, job["labels"], job["per_label"], seed=seed, quiet=quiet)
            used = rec.queries
            out = {"images": rec.images, "labels": rec.labels, "scores": rec.scores}
        t2 = time.perf_counter()
        meta: dict[str, Any] = {
            "queries": used,
            "prepare_queries": int(attack.prepare_queries_),
            "timings": {"prepare": round(t1 - t0, 3), "invert": round(t2 - t1, 3)},
        }
        if job["probe"]:
            del attack
            meta["probe"] = _probe()
        control.send_bytes(encode(out, meta))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back as one line
        kind = next((k for k, t in ERRORS.items() if type(exc) is t), None)
        if kind is None:
            kind = "server" if isinstance(exc, InvbenchError) else "attack"
        text = " ".join(str(exc).split()) or type(exc).__name__
        if kind == "attack":
            text = f"{type(exc).__name__}: {text}"
        used = getattr(access, "queries", 0)
        try:
            control.send_bytes(encode({}, {"error": text, "kind": kind, "queries": used}))
        except (OSError, ValueError):
            pass
    finally:
        queries.close()
        control.close()


if __name__ == "__main__":  # pragma: no cover - the worker process: python -m ... FD FD
    _worker_main(Connection(int(sys.argv[1])), Connection(int(sys.argv[2])))
