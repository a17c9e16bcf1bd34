"""Inner-step cost of each white-box attack against a bare PyTorch loop doing the same work.

For every attack, invbench's ``invert`` and a hand-written loop run the same forwards and
backwards (the same prior networks, target, surrogates, batch and loss terms) on the same
target: a seeded, untrained classifier of the ``auto`` family (time per step does not depend
on the weights) and a prior built by the attack itself with one training step (its weights
do not matter either). The per-step time is measured as the difference of a long and a
short run divided by the difference in steps, so set-up, selection and final scoring cancel
out and only the inner step is compared. Runs are interleaved and repeated; medians are
reported.

Prints one JSON object::

    {"device": "cpu", "threads": 2, "shape": [1, 28, 28], "batch": 32, "target_ratio": 1.15,
     "attacks": {"gmi": {"invbench_ms": ..., "bare_ms": ..., "ratio": ..., "pass": true}, ...},
     "pass": true}

Usage::

    python benchmarks/attack_speed.py --shape 1,28,28 --batch 32 --steps 10,40 --repeats 3
    python benchmarks/attack_speed.py --attacks gmi,kedmi,plg-mi --device cuda
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from invbench.access import WhiteBox
from invbench.attacks.base import Attack
from invbench.data.protocol import Split
from invbench.models import make_classifier
from invbench.registry import ATTACKS

TARGET_RATIO = 1.15
NUM_CLASSES = 5

# name -> (registered attack, its parameters besides the step count, step-count parameter)
SETTINGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "mi-face": ("mi-face", {"loss": "ce", "init": "zeros", "gamma": 0.0, "beta": 0}, "steps"),
    "gmi": ("gmi", {"restarts": 1, "gan_steps": 1}, "iterations"),
    "gmi+lomma": ("gmi", {"restarts": 1, "gan_steps": 1, "augment": "lomma",
                          "identity_loss": "logit", "distill_epochs": 1}, "iterations"),
    "deepinversion": ("deepinversion", {"warmup": 1}, "iterations"),
    # 6 draws per label x 5 labels: a search batch of 30 images whatever --batch is
    "kedmi": ("kedmi", {"gan_steps": 1, "n_critic": 1, "samples": 6}, "iterations"),
    "kedmi+lomma": ("kedmi", {"gan_steps": 1, "n_critic": 1, "samples": 6, "augment": "lomma",
                              "identity_loss": "logit", "distill_epochs": 1}, "iterations"),
    # one restart x 2 augmented views of every image per step, as the paper
    "plg-mi": ("plg-mi", {"gan_steps": 1, "n_dis": 1, "restarts": 1, "select_views": 0},
               "iterations"),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ bare loops

def bare_miface(ctx: dict[str, Any], steps: int) -> None:
    """Gradient descent on the pixels: CE summed over the batch, clamp to [0, 1]."""
    model, labels = ctx["model"], ctx["labels"]
    x = torch.zeros(labels.shape[0], *ctx["shape"], device=labels.device, requires_grad=True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), labels, reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x.sub_(g, alpha=0.1).clamp_(0.0, 1.0)


def _bare_gmi_loop(ctx: dict[str, Any], steps: int,
                   identity: Callable[[Tensor], Tensor]) -> None:
    attack, labels = ctx["attack"], ctx["labels"]
    G, D = attack.prior_modules_["generator"], attack.prior_modules_["discriminator"]
    p = attack.params
    z = torch.randn(labels.shape[0], p.latent_dim, device=labels.device).clamp_(-1, 1)
    z.requires_grad_(True)
    v = torch.zeros_like(z)
    for _ in range(steps):
        fake = G(z)
        loss = (-D(fake) + p.lambda_id * identity(fake)).sum()
        (g,) = torch.autograd.grad(loss, z)
        with torch.no_grad():
            v.mul_(p.momentum).add_(g)
            z.sub_(g.add(v, alpha=p.momentum), alpha=p.lr).clamp_(-p.clip, p.clip)


def bare_gmi(ctx: dict[str, Any], steps: int) -> None:
    """GMI: -D(G(z)) + lambda * CE(f(G(z)), y), Nesterov SGD on z, clip."""
    model, labels = ctx["model"], ctx["labels"]
    _bare_gmi_loop(ctx, steps,
                   lambda x: F.cross_entropy(model(x), labels, reduction="none"))


def _lomma_identity(ctx: dict[str, Any], labels: Tensor) -> Callable[[Tensor], Tensor]:
    """LOMMA: logit loss averaged over target and surrogates, plus p_reg on the features."""
    model, aug = ctx["model"], ctx["attack"].augmentation_
    idx = labels.view(-1, 1)

    def identity(x: Tensor) -> Tensor:
        feats = model.features(x)
        total = -model.head(feats).gather(1, idx).squeeze(1)
        for s in aug.surrogates_:
            total = total - s(x).gather(1, idx).squeeze(1)
        reg = aug.p_reg_weight * (feats - aug.p_reg_).pow(2).mean(1)
        return total / (1 + len(aug.surrogates_)) + reg

    return identity


def bare_gmi_lomma(ctx: dict[str, Any], steps: int) -> None:
    """GMI + LOMMA: logit loss averaged over target and surrogates, plus p_reg on features."""
    _bare_gmi_loop(ctx, steps, _lomma_identity(ctx, ctx["labels"]))


def bare_deepinversion(ctx: dict[str, Any], steps: int) -> None:
    """DeepInversion: CE + BN-statistics matching (forward hooks) + TV + L2, Adam on pixels."""
    model, labels, p = ctx["model"], ctx["labels"], ctx["attack"].params
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    seen: list[Tensor] = []

    def hook(module: nn.BatchNorm2d, inputs: tuple[Tensor, ...], _out: Tensor) -> None:
        x = inputs[0]
        mean = x.mean(dim=(0, 2, 3))
        var = x.permute(1, 0, 2, 3).flatten(1).var(1, unbiased=False)
        seen.append(torch.linalg.vector_norm(mean - module.running_mean)
                    + torch.linalg.vector_norm(var - module.running_var))

    handles = [m.register_forward_hook(hook) for m in bns]
    try:
        x = torch.rand(labels.shape[0], *ctx["shape"], device=labels.device).requires_grad_(True)
        opt = torch.optim.Adam([x], lr=p.lr, betas=(0.5, 0.9))
        for step in range(steps):
            seen.clear()
            view = torch.roll(x, shifts=(1, 1), dims=(2, 3))
            if step % 2:  # the attack flips with probability 1/2
                view = view.flip(3)
            ce = F.cross_entropy(model(view), labels)
            bn = p.first_bn_multiplier * seen[0] + sum(seen[1:])
            dh = view[:, :, 1:, :] - view[:, :, :-1, :]
            dw = view[:, :, :, 1:] - view[:, :, :, :-1]
            tv1 = (dh.abs().flatten(1).mean(1) + dw.abs().flatten(1).mean(1)).mean()
            tv2 = (torch.linalg.vector_norm(dh.flatten(1), dim=1)
                   + torch.linalg.vector_norm(dw.flatten(1), dim=1)).mean()
            l2 = torch.linalg.vector_norm(view.flatten(1), dim=1).mean()
            loss = ce + p.r_feature * bn + p.tv_l1 * tv1 + p.tv_l2 * tv2 + p.l2 * l2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
    finally:
        for h in handles:
            h.remove()


def _bare_kedmi_loop(ctx: dict[str, Any], steps: int,
                     identity: Callable[[Tensor, Tensor], Tensor]) -> None:
    attack = ctx["attack"]
    G, D = attack.prior_modules_["generator"], attack.prior_modules_["discriminator"]
    p = attack.params
    dev = ctx["labels"].device
    uniq = ctx["labels"].unique()
    lab = uniq.repeat_interleave(p.samples)
    mu = torch.zeros(uniq.numel(), p.latent_dim, device=dev, requires_grad=True)
    log_sigma = torch.full_like(mu, 0.5).requires_grad_(True)
    opt = torch.optim.Adam([mu, log_sigma], lr=p.lr)
    for _ in range(steps):
        eps = torch.randn(uniq.numel(), p.samples, p.latent_dim, device=dev)
        z = (mu.unsqueeze(1) + log_sigma.exp().unsqueeze(1) * eps).flatten(0, 1)
        fake = G(z)
        prior = F.softplus(-torch.logsumexp(D(fake), dim=1))
        loss = (prior + p.lambda_id * identity(fake, lab)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bare_kedmi(ctx: dict[str, Any], steps: int) -> None:
    """KEDMI: z = mu + sigma * eps per label; -log P_D(real) + lambda * CE; Adam."""
    model = ctx["model"]
    _bare_kedmi_loop(ctx, steps,
                     lambda x, y: F.cross_entropy(model(x), y, reduction="none"))


def bare_kedmi_lomma(ctx: dict[str, Any], steps: int) -> None:
    """KEDMI + LOMMA: the search batch's labels through LOMMA's ensemble identity loss."""
    attack = ctx["attack"]
    lab = ctx["labels"].unique().repeat_interleave(attack.params.samples)
    identity = _lomma_identity(ctx, lab)
    _bare_kedmi_loop(ctx, steps, lambda x, _y: identity(x))


def _bare_crop_shift(x: Tensor) -> Tensor:
    """A random resized crop of 80-100% of the area, then a random shift of up to 1 pixel."""
    n, _, h, w = x.shape
    dev = x.device
    area = 0.8 + 0.2 * torch.rand(n, device=dev)
    r = torch.exp(math.log(0.9) + (math.log(1.1) - math.log(0.9)) * torch.rand(n, device=dev))
    sy, sx = (area / r).sqrt().clamp(max=1.0), (area * r).sqrt().clamp(max=1.0)
    cy = 2 * (1 - sy) * torch.rand(n, device=dev) + sy - 1
    cx = 2 * (1 - sx) * torch.rand(n, device=dev) + sx - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    off = torch.randint(-1, 2, (2, n), device=dev)
    rows = torch.arange(h, device=dev).view(1, -1) - off[0].view(-1, 1)
    cols = torch.arange(w, device=dev).view(1, -1) - off[1].view(-1, 1)
    keep = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
    b = torch.arange(n, device=dev).view(-1, 1, 1)
    out = x[b, :, rows.clamp(0, h - 1).unsqueeze(2), cols.clamp(0, w - 1).unsqueeze(1)]
    return out.permute(0, 3, 1, 2) * keep.unsqueeze(1).to(x.dtype)


def bare_plgmi(ctx: dict[str, Any], steps: int) -> None:
    """PLG-MI: max-margin loss of the target on 2 augmented views of G(z, y), Adam on z."""
    model, labels, attack = ctx["model"], ctx["labels"], ctx["attack"]
    G = attack.prior_modules_["generator"]
    p = attack.params
    z = torch.randn(labels.shape[0], p.latent_dim, device=labels.device, requires_grad=True)
    opt = torch.optim.Adam([z], lr=p.lr)
    lab = labels.repeat(p.views)
    for _ in range(steps):
        fake = G(z, labels)
        logits = model(torch.cat([_bare_crop_shift(fake) for _ in range(p.views)]))
        true = logits.gather(1, lab.view(-1, 1)).squeeze(1)
        other = logits.scatter(1, lab.view(-1, 1), float("-inf")).amax(1)
        loss = (other - true).view(p.views, -1).mean(0).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


BARE: dict[str, Callable[[dict[str, Any], int], None]] = {
    "mi-face": bare_miface,
    "gmi": bare_gmi,
    "gmi+lomma": bare_gmi_lomma,
    "deepinversion": bare_deepinversion,
    "kedmi": bare_kedmi,
    "kedmi+lomma": bare_kedmi_lomma,
    "plg-mi": bare_plgmi,
}


# ------------------------------------------------------------------ harness

def _context(name: str, *, shape: tuple[int, int, int], batch: int,
             device: torch.device) -> dict[str, Any]:
    """Target, labels, public images and the attack, prepared with a one-step prior."""
    torch.manual_seed(0)
    model = make_classifier("auto", image_shape=shape, num_classes=NUM_CLASSES).to(device).eval()
    labels = (torch.arange(batch) % NUM_CLASSES).to(device)
    public = Split(torch.rand(128, *shape), torch.arange(128) % 3)
    attack_name, params, _ = SETTINGS[name]
    attack: Attack = ATTACKS.get(attack_name)(**params)
    access = WhiteBox(model, num_classes=NUM_CLASSES, image_shape=shape)
    attack.prepare(public if attack.needs_public else None, access=access, seed=0, quiet=True)
    return {"model": model, "labels": labels, "shape": shape, "attack": attack,
            "access": access}


def _invbench(ctx: dict[str, Any], name: str, steps: int) -> None:
    attack_name, params, step_key = SETTINGS[name]
    attack = ctx["attack"]
    attack.params = attack.params.model_copy(update={step_key: steps})
    attack.invert(ctx["access"], ctx["labels"], per_label=1, seed=0, quiet=True)


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def measure(name: str, *, shape: tuple[int, int, int], batch: int, steps: tuple[int, int],
            repeats: int, device: torch.device) -> dict[str, Any]:
    """Median per-step milliseconds of invbench and the bare loop, and their ratio."""
    ctx = _context(name, shape=shape, batch=batch, device=device)
    lo, hi = steps
    runs: dict[str, Callable[[int], None]] = {
        "invbench": lambda n: _invbench(ctx, name, n),
        "bare": lambda n: BARE[name](ctx, n),
    }
    for run in runs.values():  # warm-up
        run(lo)
    per_step: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeats):
        for key, run in runs.items():  # interleaved: load drifts hit both alike
            t_lo = _timed(lambda r=run: r(lo), device)
            t_hi = _timed(lambda r=run: r(hi), device)
            per_step[key].append((t_hi - t_lo) / (hi - lo))
    med = {k: statistics.median(v) for k, v in per_step.items()}
    ratio = med["invbench"] / med["bare"]
    return {
        "invbench_ms": round(1e3 * med["invbench"], 3),
        "bare_ms": round(1e3 * med["bare"], 3),
        "ratio": round(ratio, 3),
        "pass": bool(0 < ratio <= TARGET_RATIO),
    }


def main() -> None:
    """Parse the options, time every attack, print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacks", default=",".join(SETTINGS),
                    help=f"comma-separated subset of: {', '.join(SETTINGS)}")
    ap.add_argument("--shape", default="1,28,28", help="image shape C,H,W")
    ap.add_argument("--batch", type=int, default=32, help="images inverted together")
    ap.add_argument("--steps", default="10,40", help="short,long step counts")
    ap.add_argument("--repeats", type=int, default=3, help="timed pairs per contender")
    ap.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    names = [n.strip() for n in args.attacks.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        ap.error(f"--attacks: unknown {unknown}; choose from {', '.join(SETTINGS)}")
    try:
        shape = tuple(int(s) for s in args.shape.split(","))
        lo, hi = (int(s) for s in args.steps.split(","))
    except ValueError:
        ap.error("--shape takes C,H,W and --steps takes short,long (integers)")
    if len(shape) != 3 or not 1 <= lo < hi:
        ap.error("--shape takes C,H,W and --steps takes short,long with 1 <= short < long")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {
        n: measure(n, shape=shape, batch=args.batch, steps=(lo, hi),  # type: ignore[arg-type]
                   repeats=args.repeats, device=device)
        for n in names
    }
    print(json.dumps({
        "device": str(device), "threads": torch.get_num_threads(), "shape": list(shape),
        "batch": args.batch, "steps": [lo, hi], "repeats": args.repeats,
        "target_ratio": TARGET_RATIO, "attacks": results,
        "pass": all(r["pass"] for r in results.values()),
    }))


if __name__ == "__main__":
    main()
