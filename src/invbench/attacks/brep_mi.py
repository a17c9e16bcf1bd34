"""BREP-MI: label-only inversion by boundary repulsion (Kahla et al., CVPR 2022)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access
from invbench.attacks.base import Reconstruction
from invbench.attacks.components import QUERY_CHUNK, chunked, generate
from invbench.attacks.gan_base import WGANPriorAttack, WGANPriorParams
from invbench.errors import ConfigError
from invbench.progress import progress_bar
from invbench.registry import register_attack


def query_labels(access: Access, generator: nn.Module, z: Tensor) -> Tensor:
    """The target's top-1 label of ``G(z)`` for each latent (N,), one query per latent."""
    if z.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=z.device)
    return torch.cat([access.predict_label(generate(generator, z[s]))
                      for s in chunked(z.shape[0], QUERY_CHUNK)])


@register_attack("brep-mi")
class BREPMI(WGANPriorAttack):
    """BREP-MI: grow spheres in a GAN's latent space, move away from the boundary (label-only).

    Paper: M. Kahla, S. Chen, H. A. Just, R. Jia, "Label-Only Model Inversion Attacks via
    Boundary Repulsion", CVPR 2022, https://arxiv.org/abs/2203.01925.

    Threat model: label-only — the target's top-1 label for images the attacker chooses, plus
    public images of other classes for the prior (GMI's WGAN-GP, shared with the other
    latent-space attacks; the target is never queried for it).

    :meth:`invert` first draws latents ``z ~ N(0, I)`` clipped to ``[-clip, clip]`` in
    batches of ``init_batch`` until each requested image has a latent the target labels as
    its class (each image a different one). Then, for every image at once, each step samples
    ``points`` latents uniformly on the sphere of radius ``R`` around the image's ``z``,
    asks the target their labels, and moves ``z`` by ``step = min(R / 3, 3)`` along the mean
    of the directions to the points labelled *otherwise*, reversed and divided by ``R``
    (repulsion from the decision boundary); the move is kept only if ``G(z)`` is still
    labelled as the class. When fewer than an eighth of the points fall outside the class
    (the paper's test: inside minus outside > 0.75 of the points), the sphere grows by
    ``expansion``. An image stops after ``patience`` steps without growing its sphere, or
    after ``iterations`` steps. ``scores`` are each image's final radius: how far it is
    from the class boundary in latent space (the attack never sees a probability).

    Query cost per image: at most ``init_batch`` per initial draw, then ``points + 1`` per
    step (``iterations x (points + 1)`` at most).

    Defaults that differ from the paper, and why: ``patience`` 100 steps at a radius
    (paper: 1,000) and ``iterations`` 500 in all, so a run fits a CPU budget; a DCGAN
    WGAN-GP prior of the public classes instead of GMI's face GAN; the clipping bound is the
    paper's 1.5, the initial radius 2, the expansion 1.3, 32 points.

    Example::

        attack = BREPMI(gan_steps=300, iterations=200)
        access = LabelOnly.local(model, num_classes=5, image_shape=(1, 8, 8))
        attack.prepare(protocol.public, access=access, seed=0)
        rec = attack.invert(access, [0, 1], per_label=2, seed=0)
    """

    access: ClassVar[str] = "label-only"
    CHUNKS: ClassVar[str | None] = "image"

    class Params(WGANPriorParams):
        """The boundary-repulsion search (and the shared WGAN-GP prior's training)."""

        points: int = Field(32, ge=2, description="points sampled on each sphere (paper: 32)")
        radius: float = Field(2.0, gt=0, description="initial sphere radius (paper: 2)")
        expansion: float = Field(1.3, gt=1, description="sphere growth factor (paper: 1.3)")
        clip: float = Field(1.5, gt=0, description="latents are clipped to [-clip, clip] "
                            "(paper: 1.5)")
        patience: int = Field(100, ge=1, description="steps without growing the sphere "
                              "before an image stops (paper: 1000)")
        iterations: int = Field(500, ge=1, description="most steps per image")
        init_batch: int = Field(256, ge=1, description="latents drawn per try when looking "
                                "for a first point inside each class (paper: 256)")
        init_tries: int = Field(40, ge=1, description="draws of init_batch before giving up")

    def initial_points(self, access: Access, G: nn.Module, labels: Tensor,
                       generator: torch.Generator) -> Tensor:
        """One latent per requested image that the target labels as its class (N, d)."""
        p = self.params
        dev = access.device
        z = torch.empty((labels.numel(), p.latent_dim), device=dev)
        missing = torch.ones(labels.numel(), dtype=torch.bool, device=dev)
        for _ in range(p.init_tries):
            if not missing.any():
                break
            cand = torch.randn((p.init_batch, p.latent_dim), generator=generator,
                               device=dev).clamp(-p.clip, p.clip)
            got = query_labels(access, G, cand)
            used = torch.zeros(p.init_batch, dtype=torch.bool, device=dev)
            for i in torch.nonzero(missing).flatten().tolist():
                hit = torch.nonzero((got == labels[i]) & ~used).flatten()
                if hit.numel():
                    z[i], used[hit[0]], missing[i] = cand[hit[0]], True, False
        if missing.any():
            lost = sorted({int(v) for v in labels[missing].tolist()})
            raise ConfigError(
                f"attack '{self.name}': no latent of the prior is labelled {lost} after "
                f"{p.init_tries} x {p.init_batch} draws; raise init_tries or train the prior "
                "longer"
            )
        return z

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        G = self.prior(access)["generator"]
        p = self.params
        dev = access.device
        z = self.initial_points(access, G, labels, generator)
        n, d = z.shape
        radius = torch.full((n,), p.radius, device=dev)
        since_growth = torch.zeros(n, dtype=torch.long, device=dev)
        with progress_bar(p.iterations, self.name, quiet=quiet) as bar:
            for _ in range(p.iterations):
                active = torch.nonzero(since_growth < p.patience).flatten()
                if active.numel() == 0:
                    break
                za, ra, ya = z[active], radius[active], labels[active]
                dirs = torch.randn((active.numel(), p.points, d), generator=generator,
                                   device=dev)
                dirs = dirs * (ra.view(-1, 1, 1) / dirs.norm(dim=2, keepdim=True))
                got = query_labels(access, G, (za.unsqueeze(1) + dirs).reshape(-1, d))
                inside = (got.view(-1, p.points) == ya.unsqueeze(1)).float()
                sign = 2 * inside - 1  # +1 inside the class, -1 outside
                grow = sign.sum(dim=1) > 0.75 * p.points
                repel = (inside - 1).unsqueeze(2)  # -1 for outside points, 0 inside
                direction = (repel * dirs).mean(dim=1) / ra.unsqueeze(1)
                step = torch.clamp(ra / 3, max=3.0).unsqueeze(1)
                moved = (za + step * direction).clamp(-p.clip, p.clip)
                keep = query_labels(access, G, moved) == ya
                z[active] = torch.where(keep.unsqueeze(1), moved, za)
                radius[active] = torch.where(grow, ra * p.expansion, ra)
                since_growth[active] = torch.where(grow, torch.zeros_like(since_growth[active]),
                                                   since_growth[active] + 1)
                bar.advance()
                bar.update(active=int(active.numel()), radius=float(radius.mean()))
        return Reconstruction(images=generate(G, z), labels=labels, scores=radius)
