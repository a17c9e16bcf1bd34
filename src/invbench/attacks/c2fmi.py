"""C2FMI: coarse-to-fine black-box inversion (Ye et al., IEEE TDSC 2023)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access
from invbench.attacks.base import Reconstruction
from invbench.attacks.components import (
    QUERY_CHUNK,
    assemble_by_label,
    generate,
    label_counts,
    query_probs,
)
from invbench.attacks.gan_base import WGANPriorAttack, WGANPriorParams
from invbench.data.protocol import Split
from invbench.progress import progress_bar
from invbench.registry import register_attack


def truncated_fitness(probs: Tensor, labels: Tensor, m: int) -> Tensor:
    """C2FMI's fitness: ``p(y)`` when ``y`` is among the ``m`` most likely classes, else
    minus the mass of those ``m`` (so a point outside the top-m is pulled towards it)."""
    top, idx = probs.topk(min(m, probs.shape[1]), dim=1)
    inside = (idx == labels.view(-1, 1)).any(dim=1)
    return torch.where(inside, probs.gather(1, labels.view(-1, 1)).squeeze(1), -top.sum(1))


@register_attack("c2fmi")
class C2FMI(WGANPriorAttack):
    """C2FMI: an inverse network guides a coarse latent search, then evolution refines it.

    Paper: Y. Ye, X. Huang, Z. Chen, S. Wei, "C2FMI: Coarse-to-Fine Black-Box Model
    Inversion Attack", IEEE Transactions on Dependable and Secure Computing, 2023,
    https://doi.org/10.1109/TDSC.2023.3285071.

    Threat model: black-box — the target's probability vectors for images the attacker
    chooses, plus public images of other classes (the prior, the attacker's own embedding
    model and the inverse network are learned from them).

    :meth:`prepare` (1) trains, or loads, the shared public WGAN-GP prior (no queries);
    (2) trains the attacker's *embedding model* — a classifier of family ``embed_arch`` on
    the public classes — whose penultimate features are the embedding; (3) queries the
    target once per public image and trains the *inverse network* (an MLP) to map the
    target's probability vector to the embedding of the image, with MSE. (2) and (3) are
    cached, (3) per target.

    :meth:`invert`, per label ``y``: **stage I (coarse, no queries)** — ``popsize``
    latents descend with Adam on ``||embed(G(z)) - inverse(e_y)||^2``, where ``e_y`` is the
    confident prediction of ``y`` (|N(0, 1)| noise elsewhere, ``y`` set dominant, then L2
    normalised as in the reference code), with a latent jitter decaying from 0.02 to 0;
    **stage II (fine, queries)** — differential evolution on those latents for
    ``generations``: each child is ``x_i + 0.02 (x_best - x_i) + beta * sum of 4 random
    population differences`` (beta 0.1, annealed over the last 30 generations), crossed
    gene-wise with its parent at rate 0.5, and replaces the parent when its fitness is
    higher; fitness is :func:`truncated_fitness` with the top ``truncation`` classes. The
    ``per_label`` fittest latents are the reconstructions; ``scores`` are the target's
    probabilities of the label.

    Query cost: ``len(public)`` in prepare; per label ``popsize x (generations + 1)`` and one
    per reconstruction.

    Defaults that differ from the paper, and why: the GAN is a DCGAN WGAN-GP of the public
    classes (the paper: a StyleGAN2 on FFHQ), and the embedding model a small ``mobile``
    classifier trained on the public classes (the paper: a face recognition network);
    ``generations`` 100 (reference: 250) and ``coarse_steps`` 100, sized for CPUs. The
    parents' fitness is kept between generations instead of re-queried (the target's
    answers are deterministic per image, so this only halves the queries).

    Example::

        attack = C2FMI(gan_steps=300, generations=30)
        access = BlackBox.local(model, num_classes=5, image_shape=(1, 8, 8))
        attack.prepare(protocol.public, access=access, seed=0)
        rec = attack.invert(access, [0, 1], per_label=4, seed=0)
    """

    access: ClassVar[str] = "black-box"
    CHUNKS: ClassVar[str | None] = None

    class Params(WGANPriorParams):
        """The embedding model, the inverse network and both search stages."""

        embed_arch: Literal["mobile", "squeeze", "cnn-s", "cnn-m", "cnn-l", "resnet", "dense",
                            "mlp"] = Field("mobile", description="family of the attacker's "
                                           "embedding model (trained on the public classes)")
        embed_epochs: int = Field(10, ge=1, description="epochs of the embedding model")
        inverse_epochs: int = Field(50, ge=1, description="epochs of the inverse network")
        popsize: int = Field(32, ge=4, description="latents per label in both stages "
                             "(reference: 32)")
        coarse_steps: int = Field(100, ge=0, description="stage-I Adam steps")
        coarse_lr: float = Field(0.05, gt=0, description="stage-I Adam learning rate")
        generations: int = Field(100, ge=0, description="stage-II differential evolution "
                                 "generations (reference: 250)")
        truncation: int = Field(5, ge=1, description="top classes in the fitness "
                                "(reference: M)")
        clip: float = Field(1.0, gt=0, description="latents are clipped to [-clip, clip]")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.embed_: nn.Module | None = None
        self.inverse_: nn.Module | None = None

    # -- prepare ----------------------------------------------------------------------

    def _prepare(self, public: Split | None, *, access: Access, cache: Any, seed: int,
                 quiet: bool) -> None:
        super()._prepare(public, access=access, cache=cache, seed=seed, quiet=quiet)
        from invbench.models import make_classifier
        from invbench.training import train_classifier

        assert isinstance(public, Split)
        p = self.params
        dev = access.device
        classes = sorted(set(public.y.tolist()))
        remap = {c: i for i, c in enumerate(classes)}
        y_pub = torch.tensor([remap[int(v)] for v in public.y.tolist()], dtype=torch.long)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            embed = make_classifier(p.embed_arch, image_shape=access.image_shape,
                                    num_classes=max(2, len(classes)))
        base = {"public": public.digest(), "image_shape": list(access.image_shape),
                "seed": int(seed)}

        def train_embed() -> dict[str, Any]:
            train_classifier(embed, public.x, y_pub, epochs=p.embed_epochs, seed=int(seed),
                             device=dev, quiet=quiet, desc=f"{self.name}: embedding model")
            return {}

        self.cached_prior(cache, access=access, kind="c2fmi-embed",
                          parts={**base, "arch": p.embed_arch, "epochs": p.embed_epochs},
                          modules={"embed": embed}, create=train_embed, uses_target=False)
        embed = embed.to(dev).eval().requires_grad_(False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + 1)
            inverse = nn.Sequential(
                nn.Linear(access.num_classes, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, int(embed.feat_dim)),
            )

        def train_inverse() -> dict[str, Any]:
            return self._train_inverse(inverse, embed, public, access=access, seed=seed,
                                       quiet=quiet)

        self.cached_prior(cache, access=access, kind="c2fmi-inverse",
                          parts={**base, "arch": p.embed_arch, "epochs": p.embed_epochs,
                                 "inverse_epochs": p.inverse_epochs},
                          modules={"inverse": inverse}, create=train_inverse,
                          uses_target=True)
        self.embed_ = embed
        self.inverse_ = inverse.to(dev).eval().requires_grad_(False)

    def _train_inverse(self, inverse: nn.Module, embed: nn.Module, public: Split, *,
                       access: Access, seed: int, quiet: bool) -> dict[str, Any]:
        dev = access.device
        probs = query_probs(access, public.x.float())
        with torch.inference_mode():
            feats = torch.cat([embed.features(c.to(dev)) for c in public.x.split(QUERY_CHUNK)])
        inputs = F.normalize(probs, dim=1).to(dev)
        inverse.to(dev).train()
        opt = torch.optim.Adam(inverse.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(int(seed))
        n, bs = inputs.shape[0], 64
        last = float("nan")
        epochs = self.params.inverse_epochs
        with progress_bar(epochs, f"{self.name}: inverse network", quiet=quiet) as bar:
            for _ in range(epochs):
                order = torch.randperm(n, generator=gen)
                for b in range(0, n, bs):
                    idx = order[b : b + bs]
                    loss = F.mse_loss(inverse(inputs[idx]), feats[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    last = float(loss.detach())
                bar.advance()
                bar.update(mse=last)
        inverse.eval()
        return {"final_mse": last}

    # -- invert ---------------------------------------------------------------------------

    def _coarse(self, G: nn.Module, y: int, k: int, n: int, generator: torch.Generator,
                dev: torch.device) -> Tensor:
        """Stage I: ``n`` latents pulled towards the inverse network's embedding of ``y``."""
        p = self.params
        assert self.embed_ is not None and self.inverse_ is not None
        pred = torch.randn((n, k), generator=generator, device=dev).abs()
        pred[:, y] = 1e6
        target = self.inverse_(F.normalize(pred, dim=1)).detach()
        z = torch.randn((n, p.latent_dim), generator=generator, device=dev)
        z = z.clamp(-p.clip, p.clip).requires_grad_(True)
        opt = torch.optim.Adam([z], lr=p.coarse_lr)
        for i in range(p.coarse_steps):
            jitter = 0.02 * (1 - i / max(1, p.coarse_steps))
            noisy = z + jitter * torch.randn(z.shape, generator=generator, device=dev)
            loss = F.mse_loss(self.embed_.features(G(noisy)), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                z.clamp_(-p.clip, p.clip)
        return z.detach()

    def _fitness(self, access: Access, G: nn.Module, z: Tensor, y: int) -> Tensor:
        probs = query_probs(access, generate(G, z))
        labels = torch.full((z.shape[0],), y, dtype=torch.long, device=probs.device)
        return truncated_fitness(probs, labels, self.params.truncation)

    def _evolve(self, access: Access, G: nn.Module, pop: Tensor, fit: Tensor, y: int,
                step: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One generation of the reference's DE/current-to-best with 4 difference vectors."""
        p = self.params
        n, d = pop.shape
        dev = pop.device
        beta = 0.1 if step < p.generations - 30 else 0.1 * (p.generations - step) / 50
        best = pop[torch.argmax(fit)]
        pairs = torch.randint(0, n, (n, 4, 2), generator=generator, device=dev)
        diffs = (pop[pairs[..., 0]] - pop[pairs[..., 1]]).sum(dim=1)
        children = pop + 0.02 * (best - pop) + beta * diffs
        cross = torch.rand((n, d), generator=generator, device=dev) > 0.5
        children = torch.where(cross, children, pop).clamp(-p.clip, p.clip)
        child_fit = self._fitness(access, G, children, y)
        better = child_fit > fit
        return (torch.where(better.unsqueeze(1), children, pop),
                torch.where(better, child_fit, fit))

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        G = self.prior(access)["generator"]
        if self.embed_ is None or self.inverse_ is None:
            from invbench.errors import ConfigError

            raise ConfigError(f"attack '{self.name}' is not prepared: call prepare() first")
        p = self.params
        dev = access.device
        wanted = label_counts(labels)
        results: dict[int, tuple[Tensor, Tensor]] = {}
        with progress_bar(len(wanted) * (p.generations + 1), self.name, quiet=quiet) as bar:
            for y, count in wanted.items():
                n = max(p.popsize, count)
                pop = self._coarse(G, y, access.num_classes, n, generator, dev)
                fit = self._fitness(access, G, pop, y)
                bar.advance()
                for step in range(p.generations):
                    pop, fit = self._evolve(access, G, pop, fit, y, step, generator)
                    bar.advance()
                    bar.update(label=y, best=float(fit.max()))
                order = torch.argsort(fit, descending=True)[:count]
                results[y] = (pop[order], fit[order])
        z, _ = assemble_by_label(labels, results)
        images = generate(G, z)
        probs = query_probs(access, images)
        scores = probs.gather(1, labels.view(-1, 1).to(probs.device)).squeeze(1)
        return Reconstruction(images=images, labels=labels, scores=scores)
