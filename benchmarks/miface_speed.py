"""Speed of invbench's MI-Face against a bare PyTorch loop (and ART's MIFace, if installed).

All contenders invert the same target for the same labels with the same number of steps:
invbench's :class:`~invbench.attacks.MIFace` (default loss: cross-entropy, lr 0.1, zero
start, clamp to [0, 1], early stopping off), a hand-written loop doing exactly that, and,
when ``adversarial-robustness-toolbox`` is importable, ART's ``MIFace`` (its own update
rule: gradient ascent on the class output through a numpy API; reported for reference, not
part of the pass criterion). The target is the digits ``auto`` classifier with seeded,
untrained weights: the time per step does not depend on the weights. Each contender runs
once to warm up, then ``--repeats`` times interleaved; medians are reported.

Prints one JSON object::

    {"steps": 300, "batch": 64, "device": "cpu", "repeats": 5, "threads": 2,
     "invbench_s": ..., "bare_s": ..., "ratio": ..., "art_s": ... | null,
     "target_ratio": 1.15, "pass": true}

Usage::

    python benchmarks/miface_speed.py --steps 300 --batch 64 --repeats 5 --device cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.access import WhiteBox
from invbench.attacks import MIFace
from invbench.models import make_classifier

TARGET_RATIO = 1.15
IMAGE_SHAPE = (1, 8, 8)
NUM_CLASSES = 5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_miface(model: nn.Module, labels: Tensor, *, steps: int, lr: float) -> Tensor:
    """The same attack written directly: CE summed over the batch, x <- clamp(x - lr g, 0, 1)."""
    x = torch.zeros(labels.shape[0], *IMAGE_SHAPE, device=labels.device, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), labels, reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x.sub_(g, alpha=lr).clamp_(0.0, 1.0)
    x = x.detach()
    with torch.inference_mode():
        torch.softmax(model(x), dim=1).gather(1, labels.view(-1, 1))
    return x


def invbench_miface(model: nn.Module, labels: Tensor, *, steps: int, lr: float) -> Tensor:
    """invbench's MI-Face with the same loss, step size, start and number of steps."""
    access = WhiteBox(model, num_classes=NUM_CLASSES, image_shape=IMAGE_SHAPE)
    attack = MIFace(steps=steps, lr=lr, loss="ce", init="zeros", gamma=0.0, beta=0)
    return attack.invert(access, labels, per_label=1, seed=0, quiet=True).images


def art_runner(model: nn.Module, labels: Tensor, *, steps: int,
               lr: float) -> Callable[[], object] | None:
    """ART's MIFace on the same model, or None when ART is not importable."""
    try:
        from art.attacks.inference.model_inversion import MIFace as ArtMIFace
        from art.estimators.classification import PyTorchClassifier
    except ImportError:
        return None
    clf = PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=IMAGE_SHAPE,
        nb_classes=NUM_CLASSES, clip_values=(0.0, 1.0), device_type=labels.device.type,
    )
    attack = ArtMIFace(
        clf, max_iter=steps, window_length=steps + 1, threshold=1.0, learning_rate=lr,
        batch_size=labels.shape[0], verbose=False,
    )
    y = labels.cpu().numpy()
    x0 = torch.zeros(labels.shape[0], *IMAGE_SHAPE).numpy()
    return lambda: attack.infer(x0, y)


def main() -> None:
    """Parse the options, time every contender, print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300, help="MI-Face steps per run")
    ap.add_argument("--batch", type=int, default=64, help="images inverted together")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per contender")
    ap.add_argument("--lr", type=float, default=0.1, help="step size (both loops)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    model = make_classifier("auto", image_shape=IMAGE_SHAPE, num_classes=NUM_CLASSES)
    model = model.to(device).eval()
    labels = (torch.arange(args.batch) % NUM_CLASSES).to(device)

    contenders: dict[str, Callable[[], object]] = {
        "invbench": lambda: invbench_miface(model, labels, steps=args.steps, lr=args.lr),
        "bare": lambda: bare_miface(model, labels, steps=args.steps, lr=args.lr),
    }
    art = art_runner(model, labels, steps=args.steps, lr=args.lr)
    if art is not None:
        contenders["art"] = art

    # Same result check: the two loops implement the same update.
    a = invbench_miface(model, labels, steps=5, lr=args.lr).cpu()
    b = bare_miface(model, labels, steps=5, lr=args.lr).cpu()
    same = bool(torch.allclose(a, b, atol=1e-5))

    times: dict[str, list[float]] = {k: [] for k in contenders}
    for fn in contenders.values():  # warm-up
        fn()
    for _ in range(args.repeats):
        for name, fn in contenders.items():  # interleaved: load drifts hit all alike
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["invbench"] / med["bare"]
    print(json.dumps({
        "steps": args.steps,
        "batch": args.batch,
        "device": str(device),
        "repeats": args.repeats,
        "threads": torch.get_num_threads(),
        "invbench_s": round(med["invbench"], 4),
        "bare_s": round(med["bare"], 4),
        "ratio": round(ratio, 4),
        "art_s": round(med["art"], 4) if "art" in med else None,
        "same_result": same,
        "target_ratio": TARGET_RATIO,
        "pass": bool(ratio <= TARGET_RATIO and same),
    }))


if __name__ == "__main__":
    main()
