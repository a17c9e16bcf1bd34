"""Cost and quality of every GAN prior of a spec: training time and FID of samples vs public.

For each GAN-prior attack of the spec (GMI's WGAN-GP, KEDMI's semi-supervised GAN, PLG-MI's
conditional GAN; one entry per distinct prior), on the target of the spec's first defense
(the prior of a target-aware attack depends on it): prepare the attack through the run's
cache — training the prior, or loading what ``invbench run`` / ``pipeline_cost.py`` already
trained into the same ``--out`` — then draw ``--samples`` images with the attack's
``sample_prior`` and compare them with as many public images, in the features of the run's
robust evaluator (the feature space of the ``fid`` metric):

* ``fid`` — Fréchet distance of the samples to the public images;
* ``fid_floor`` — the same for *other* public images (two disjoint draws of the public split:
  what a perfect prior would score at this sample size);
* ``fid_noise`` — the same for uniform noise (what no prior scores).

``train_seconds`` is the time the prior took to train (the cache entry's ``build_seconds``,
so a warm run reports the cold time).
Prints one JSON object::

    {"spec": ..., "defense": "none", "samples": 1000, "fid_floor": ..., "fid_noise": ...,
     "priors": [{"attack": "kedmi", "prior": "kedmi-gan", "train_seconds": ..., "fid": ...,
                 "kid": ..., "prepare_queries": ..., "cached": true}, ...]}

Usage::

    python benchmarks/gan_priors.py benchmarks/specs/fashion-white-box.yaml --out DIR
    python benchmarks/gan_priors.py SPEC --out DIR --grid docs/img   # + sample grids
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path,
                    help="YAML spec (e.g. benchmarks/specs/fashion-white-box.yaml)")
    ap.add_argument("--out", type=Path, default=None, help="the run's output folder (its cache)")
    ap.add_argument("--samples", type=int, default=1000, help="samples per prior (>= 2)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: the spec's)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--grid", type=Path, default=None,
                    help="folder for one PNG per prior: 8 public images | 16 samples")
    args = ap.parse_args()
    if args.samples < 2:
        ap.error("--samples must be >= 2")

    from invbench.access import make_access
    from invbench.attacks.gan_base import GANPriorAttack
    from invbench.bench.runner import RunContext, run_judges, run_target
    from invbench.bench.store import Store
    from invbench.cache import Cache
    from invbench.config import build_method, load_spec
    from invbench.data import load_protocol
    from invbench.errors import InvbenchError
    from invbench.metrics.fid import frechet_distance, kernel_inception_distance
    from invbench.models import reseed

    overrides: dict[str, Any] = {}
    if args.out is not None:
        overrides["out"] = args.out
    if args.device:
        overrides["device"] = args.device
    try:
        spec = load_spec(args.spec, **overrides)
        attacks = [build_method("attack", m) for m in spec.attacks]
        defense = build_method("defense", spec.defenses[0])
    except InvbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    priors: list[GANPriorAttack] = []
    seen: set[str] = set()
    for attack in attacks:
        if isinstance(attack, GANPriorAttack):
            key = json.dumps(attack.cache_parts(), sort_keys=True, default=str)
            if key not in seen:  # e.g. gmi and gmi + LOMMA share one prior
                seen.add(key)
                priors.append(attack)
    if not priors:
        print("error: the spec has no GAN-prior attack (gmi, kedmi, plg-mi)", file=sys.stderr)
        return 2

    device = torch.device(spec.device)
    protocol = load_protocol(
        spec.dataset, data_dir=spec.data_dir, resolution=spec.resolution,
        private_classes=spec.protocol.private_classes,
        public_classes=spec.protocol.public_classes,
        test_fraction=spec.protocol.test_fraction,
        max_per_class=spec.protocol.max_per_class, seed=spec.seed,
    )
    out = Path(spec.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(spec=spec, protocol=protocol, device=device, cache=Cache(out / "cache"),
                     store=Store(out / "invbench.sqlite"), quiet=args.quiet)
    try:
        model, acc = run_target(ctx, defense)
        (target_key,) = ctx.target_keys.values()  # the one target this script trained
        robust = run_judges(ctx).robust
        n = args.samples
        public = protocol.public.x
        if len(public) < 2 * n:
            print(f"error: --samples {n} needs {2 * n} public images, the split has "
                  f"{len(public)}", file=sys.stderr)
            return 2
        g = torch.Generator().manual_seed(spec.seed)
        order = torch.randperm(len(public), generator=g)
        real = robust.features(public[order[:n]]).double().cpu()
        other = robust.features(public[order[n:2 * n]]).double().cpu()
        noise = robust.features(torch.rand(n, *protocol.image_shape, generator=g)).double().cpu()
        rows = []
        for attack in priors:
            access = make_access(attack.access, model, num_classes=protocol.num_classes,
                                 image_shape=protocol.image_shape,
                                 target_key=target_key)
            cached = ctx.cache.view(attack.cache_owner())
            t0 = time.perf_counter()
            torch.manual_seed(spec.seed)
            reseed(model, spec.seed)
            attack.prepare(protocol.public, access=access, cache=cached, seed=spec.seed,
                           quiet=args.quiet)
            prepare_s = time.perf_counter() - t0
            meta = attack.prior_meta_ or {}
            gen = torch.Generator(device=device).manual_seed(spec.seed + 1)
            samples = attack.sample_prior(n, gen)
            fake = robust.features(samples).double().cpu()
            if args.grid is not None:
                from invbench.report.grids import save_comparison_grid

                save_comparison_grid(
                    args.grid / f"prior-{attack.name}.png", private=public[order[:8]],
                    private_labels=torch.zeros(8, dtype=torch.long), recon=samples[:16].cpu(),
                    recon_labels=torch.zeros(16, dtype=torch.long),
                    class_names={0: "public | prior samples"}, columns=16, private_columns=8,
                )
            rows.append({
                "attack": attack.name,
                "prior": attack.PRIOR_KIND,
                "params": {k: attack.get_params()[k] for k in attack.PRIOR_PARAMS},
                "train_seconds": meta.get("build_seconds"),
                "prepare_seconds": round(prepare_s, 1),
                "prepare_queries": attack.prepare_queries_,
                "fid": round(frechet_distance(fake, real), 2),
                "kid": round(kernel_inception_distance(fake, real), 4),
                "losses": meta.get("losses"),
            })
        report = {
            "spec": str(args.spec),
            "out": str(out),
            "defense": defense.name,
            "target_accuracy": round(acc, 4),
            "feature_space": f"robust evaluator ({robust.arch}, {real.shape[1]} features)",
            "samples": n,
            "fid_floor": round(frechet_distance(other, real), 2),
            "fid_noise": round(frechet_distance(noise, real), 2),
            "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                        "device": str(device), "platform": platform.platform(),
                        "torch": torch.__version__},
            "priors": rows,
        }
    finally:
        ctx.store.close()
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
