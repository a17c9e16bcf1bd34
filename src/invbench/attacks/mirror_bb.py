"""MIRROR, black-box: genetic search in a GAN prior's latent space (An et al., NDSS 2022)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access
from invbench.attacks.base import Reconstruction
from invbench.attacks.components import (
    assemble_by_label,
    generate,
    label_counts,
    query_probs,
)
from invbench.attacks.gan_base import WGANPriorAttack, WGANPriorParams
from invbench.errors import ConfigError
from invbench.progress import progress_bar
from invbench.registry import register_attack


def label_log_probs(access: Access, generator: nn.Module, z: Tensor, labels: Tensor) -> Tensor:
    """``log p(label | G(z))`` from the target's answers (N,), one query per latent."""
    probs = query_probs(access, generate(generator, z))
    return torch.log(probs.gather(1, labels.view(-1, 1)).squeeze(1).clamp_min(1e-30))


@register_attack("mirror-bb")
class MirrorBB(WGANPriorAttack):
    """MIRROR, black-box: a genetic algorithm over a public GAN's latents (An et al. 2022).

    Paper: S. An, G. Tao, Q. Xu, Y. Liu, G. Shen, Y. Yao, J. Xu, X. Zhang, "MIRROR: Model
    Inversion for Deep Learning Network with High Fidelity", NDSS 2022,
    https://www.ndss-symposium.org/ndss-paper/auto-draft-203/ (black-box variant).

    Threat model: black-box — the target's probability vectors for images the attacker
    chooses (no gradients), plus public images of other classes of the same domain for the
    prior.

    :meth:`prepare` trains (or loads) GMI's WGAN-GP prior on the public data — the same
    cached prior every attack of this family shares; the target is never queried for it.
    :meth:`invert` runs one genetic search per label: ``pool`` latents ``z ~ N(0, I)``
    (clipped to ``[-clip, clip]``) are drawn once and scored for every label; a label's first
    population is its ``population`` best. Fitness is ``log p(y | G(z))``. Each generation
    keeps the elite and breeds ``population - 1`` children: both parents drawn with
    probability ``softmax(fitness)``, each gene taken from the first parent with probability
    ``w1 / (w1 + w2)`` of the parents' selection weights, mutated with probability
    ``mutation_prob`` by ``mutation_ce * U(-1, 1)`` times the latent's standard deviation
    (1), then clipped. The ``per_label`` fittest members of the last population are the
    reconstructions; ``scores`` are the target's probabilities of the label.

    Query cost: ``pool`` (once) + ``(population - 1) x generations`` per label (a label's
    first population comes from the scored pool).

    Defaults that differ from the paper, and why: a DCGAN WGAN-GP prior of the public
    classes instead of a pretrained StyleGAN (no weights may be downloaded; the
    ``w``-space bounds become the Gaussian latent's ``[-clip, clip]``); ``population`` 100
    and ``generations`` 50 (the reference configuration: 1,000 and 100), sized for CPUs;
    the crossover ratio uses the selection weights — the public reimplementation divides
    log-probabilities, which favours the less fit parent.

    Example::

        attack = MirrorBB(gan_steps=300, generations=20)
        access = BlackBox.local(model, num_classes=5, image_shape=(1, 8, 8))
        attack.prepare(protocol.public, access=access, seed=0)
        rec = attack.invert(access, [0, 1], per_label=3, seed=0)
    """

    access: ClassVar[str] = "black-box"
    #: one search per label: invert does not split a label's images into chunks
    CHUNKS: ClassVar[str | None] = None

    class Params(WGANPriorParams):
        """The genetic search (and the shared WGAN-GP prior's training)."""

        pool: int = Field(2000, ge=1, description="latents drawn and scored once to seed "
                          "every label's population")
        population: int = Field(100, ge=2, description="individuals per generation "
                                "(paper: 1000)")
        generations: int = Field(50, ge=0, description="generations per label (paper: 100)")
        mutation_prob: float = Field(0.1, ge=0, le=1, description="chance a gene mutates "
                                     "(paper: 0.1)")
        mutation_ce: float = Field(0.1, gt=0, description="mutation scale in latent "
                                   "standard deviations (paper: 0.1)")
        clip: float = Field(1.0, gt=0, description="latents are clipped to [-clip, clip]")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        if self.params.pool < self.params.population:
            raise ConfigError(
                f"The 'pool' parameter of attack '{self.name}' must be >= population "
                f"({self.params.population}). Got {self.params.pool} instead."
            )

    def _evolve(self, access: Access, G: nn.Module, population: Tensor, fitness: Tensor,
                label: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """One generation: elite + ``len(population) - 1`` mutated children, re-scored."""
        p = self.params
        n, dim = population.shape
        dev = population.device
        order = torch.argsort(fitness, descending=True)
        population, fitness = population[order], fitness[order]
        weights = torch.softmax(fitness, dim=0)
        parents = torch.multinomial(weights, 2 * (n - 1), replacement=True,
                                    generator=generator)
        a, b = parents[: n - 1], parents[n - 1 :]
        take_a = weights[a] / (weights[a] + weights[b]).clamp_min(1e-30)
        mask = torch.rand((n - 1, dim), generator=generator, device=dev) < take_a.unsqueeze(1)
        children = torch.where(mask, population[a], population[b])
        mutate = torch.rand((n - 1, dim), generator=generator, device=dev) < p.mutation_prob
        noise = p.mutation_ce * (2 * torch.rand((n - 1, dim), generator=generator,
                                                device=dev) - 1)
        children = (children + mutate * noise).clamp(-p.clip, p.clip)
        lab = torch.full((n - 1,), label, dtype=torch.long, device=dev)
        child_fitness = label_log_probs(access, G, children, lab)
        return torch.cat([population[:1], children]), torch.cat([fitness[:1], child_fitness])

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        G = self.prior(access)["generator"]
        p = self.params
        dev = access.device
        wanted = label_counts(labels)
        for v, count in wanted.items():
            if count > p.population:
                raise ConfigError(
                    f"attack '{self.name}': {count} images of label {v} asked, the population "
                    f"holds {p.population}; raise population or lower per_label"
                )
        pool = torch.randn((p.pool, p.latent_dim), generator=generator, device=dev)
        pool = pool.clamp(-p.clip, p.clip)
        pool_log_probs = torch.log(query_probs(access, generate(G, pool)).clamp_min(1e-30))
        results: dict[int, tuple[Tensor, Tensor]] = {}
        with progress_bar(len(wanted) * p.generations, self.name, quiet=quiet) as bar:
            for v, count in wanted.items():
                first = torch.topk(pool_log_probs[:, v], p.population).indices
                population, fitness = pool[first], pool_log_probs[first, v]
                for _ in range(p.generations):
                    population, fitness = self._evolve(access, G, population, fitness, v,
                                                       generator)
                    bar.advance()
                    bar.update(label=v, best=float(fitness.max().exp()))
                best = torch.argsort(fitness, descending=True)[:count]
                results[v] = (population[best], fitness[best])
        z, log_probs = assemble_by_label(labels, results)
        return Reconstruction(images=generate(G, z), labels=labels, scores=log_probs.exp())
