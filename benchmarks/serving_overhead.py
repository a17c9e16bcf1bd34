"""What the barrier costs: a query batch through each channel vs calling the model; prints JSON.

A black-box attack reaches its target only through query messages (safetensors bytes) to a
:class:`~invbench.serving.service.TargetService` in another process. This measures the time
of one query batch of ``B`` images, median of ``--repeats``, for:

- ``direct``: ``softmax(model(x))`` under ``inference_mode`` in this process (the floor);
- ``local``: :class:`~invbench.access.BlackBox` on a service in this process (the codec and
  the service's checks, no transport);
- ``pipe``: the runner's setting — the service in another process, reached over a
  ``multiprocessing`` socket pair (here the roles are swapped: this process queries, a child
  serves, which costs the same);
- ``http``: ``invbench serve``'s setting — the service in another process behind a loopback
  HTTP server.

Each line of the ``results`` array holds the batch size, the seconds per batch of each
channel and its ratio to ``direct``. The model is a seeded ``cnn-m`` for 28 px images (the
Fashion-MNIST targets), one torch thread on both sides.

Usage::

    python benchmarks/serving_overhead.py [--repeats 50] [--batches 1 16 64 256]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection

import torch

SHAPE = (1, 28, 28)
CLASSES = 5


def _model() -> torch.nn.Module:
    from invbench.models import make_classifier

    torch.manual_seed(0)
    return make_classifier("cnn-m", image_shape=SHAPE, num_classes=CLASSES).eval()


def _service():  # noqa: ANN202
    from invbench.serving.service import TargetService

    return TargetService(_model(), level="black-box", num_classes=CLASSES, image_shape=SHAPE,
                         target_key="bench")


def _serve_pipe(fd: int) -> None:
    from invbench.serving.codec import MAX_MESSAGE_BYTES

    torch.set_num_threads(1)
    service, conn = _service(), Connection(fd)
    while True:
        try:
            request = conn.recv_bytes(MAX_MESSAGE_BYTES)
        except EOFError:
            return
        conn.send_bytes(service.handle(request))


def _serve_http() -> None:
    from invbench.serving.http import make_server, server_url

    torch.set_num_threads(1)
    server = make_server(_service(), port=0)
    sys.stdout.write(server_url(server) + "\n")
    sys.stdout.flush()
    server.serve_forever()


def _time(fn, x: torch.Tensor, repeats: int) -> float:  # noqa: ANN001
    fn(x)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50, help="timed batches per setting")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--serve-fd", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--serve-http", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_fd is not None:
        _serve_pipe(args.serve_fd)
        return 0
    if args.serve_http:
        _serve_http()
        return 0

    from invbench.access import BlackBox
    from invbench.serving.channels import HttpChannel, LocalChannel, PipeChannel

    torch.set_num_threads(1)
    model = _model()
    ours, theirs = mp.Pipe(duplex=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    pipe_proc = subprocess.Popen([sys.executable, __file__, "--serve-fd", str(theirs.fileno())],
                                 pass_fds=(theirs.fileno(),), env=env)
    theirs.close()
    http_proc = subprocess.Popen([sys.executable, __file__, "--serve-http"],
                                 stdout=subprocess.PIPE, text=True, env=env)
    try:
        url = http_proc.stdout.readline().strip()  # type: ignore[union-attr]
        channels = {
            "local": BlackBox(LocalChannel(_service())),
            "pipe": BlackBox(PipeChannel(ours)),
            "http": BlackBox(HttpChannel(url)),
        }

        def direct(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return torch.softmax(model(x), dim=1)

        results = []
        gen = torch.Generator().manual_seed(0)
        for b in args.batches:
            x = torch.rand(b, *SHAPE, generator=gen)
            row: dict[str, float] = {"batch": b, "direct_s": _time(direct, x, args.repeats)}
            for name, access in channels.items():
                row[f"{name}_s"] = _time(access.predict_proba, x, args.repeats)
                row[f"{name}_ratio"] = round(row[f"{name}_s"] / row["direct_s"], 3)
            results.append(row)
    finally:
        ours.close()
        pipe_proc.wait(10)
        http_proc.terminate()
        http_proc.wait(10)
    print(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "threads": 1},
        "model": "cnn-m 28x28, 5 classes",
        "repeats": args.repeats,
        "results": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
