"""Knowledge Alignment: decode prediction vectors back to images (Yang et al., CCS 2019)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access
from invbench.attacks.base import Attack, Reconstruction
from invbench.attacks.components import query_probs, target_confidence
from invbench.data.protocol import Split
from invbench.errors import ConfigError
from invbench.params import Params
from invbench.progress import progress_bar
from invbench.registry import register_attack


def align_vectors(probs: Tensor, *, truncation: int, c: float) -> Tensor:
    """The decoder's input: the paper's truncated, shifted log-probability vector.

    Keeps the ``truncation`` largest entries of each row as ``log p + c`` (log clamped at
    -1000), shifts a row up so its smallest kept entry is >= 0, and zeroes the rest: the
    attacker aligns what the target reveals (a truncated vector) with what it trains on.
    """
    k = min(int(truncation), probs.shape[1])
    top, idx = probs.topk(k, dim=1)
    logp = torch.clamp(torch.log(top.clamp_min(1e-30)), min=-1000.0) + c
    logp = logp + F.relu(-logp.min(dim=1, keepdim=True).values)
    return torch.zeros_like(probs).scatter(1, idx, logp)


@register_attack("knowledge-alignment")
class KnowledgeAlignment(Attack):
    """Knowledge Alignment: decode class vectors with a decoder trained on public data (black-box).

    Paper: Z. Yang, J. Zhang, E.-C. Chang, Z. Liang, "Neural Network Inversion in
    Adversarial Setting via Background Knowledge Alignment", ACM CCS 2019,
    https://doi.org/10.1145/3319535.3354261. One of the two black-box attacks the MID paper
    (Wang et al., AAAI 2021) evaluates.

    Threat model: black-box — the target's probability vectors (after the deployment's
    output processing) for images the attacker chooses, plus public images of the same
    domain (other classes). No gradients, no module.

    :meth:`prepare` queries the target once per public image (``prepare_queries_`` =
    ``len(public)``), turns each answer into the aligned vector of :func:`align_vectors`
    (top ``truncation`` log-probabilities + ``c``, the rest zero) and trains an inversion
    decoder — a DCGAN-style transposed-convolution network (invbench's GAN generator
    architecture with the class vector as its input) — to map the vector back to the public
    image with MSE, Adam (lr 2e-3, betas (0.5, 0.999), amsgrad: the MID paper's code). The
    decoder is cached per target (its key holds the target's identity).

    :meth:`invert` decodes class vectors: for label ``y`` the vector a perfectly confident
    answer would be (probability 1 on ``y``); the ``i``-th of ``per_label`` images decodes
    a vector that moves a fraction ``spread * i / (per_label - 1)`` of the mass to a random
    probability vector (Dirichlet(1), seeded), so the images of a class differ (our
    addition: the paper inverts one vector per class). Each image costs one more query, its
    score (the target's probability of ``y``). Query cost: ``len(public)`` in prepare and
    one per reconstruction.

    Defaults that differ from the paper: ``epochs`` 30 on the public split (the paper trains
    until the test loss stops improving); ``truncation`` 0 means no truncation (every
    class's probability; the paper truncates to the top 5-50 of 530 FaceScrub classes, which
    matters when the target has hundreds of classes).

    Example::

        attack = KnowledgeAlignment(epochs=10)
        attack.prepare(protocol.public, access=BlackBox.local(model, num_classes=5,
                                                               image_shape=(1, 8, 8)))
        rec = attack.invert(access, [0, 1], per_label=4, seed=0)
    """

    access: ClassVar[str] = "black-box"
    needs_public: ClassVar[bool] = True

    class Params(Params):
        """The inversion decoder's training and the class vectors decoded."""

        epochs: int = Field(30, ge=1, description="passes over the public split")
        train_batch_size: int = Field(64, ge=2, description="decoder training batch size")
        lr: float = Field(2e-3, gt=0, description="Adam learning rate (MID's code: 2e-3)")
        truncation: int = Field(
            0, ge=0, description="largest entries of each answer kept (0: all classes)"
        )
        c: float = Field(50.0, ge=0, description="offset added to kept log-probabilities")
        spread: float = Field(
            0.2, ge=0, le=1, description="largest mass moved off the class for per_label variety"
        )

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        #: the trained decoder (eval mode, frozen), or ``None`` before :meth:`prepare`
        self.decoder_: nn.Module | None = None
        self.decoder_meta_: dict[str, Any] | None = None

    def check(self, *, image_shape: tuple[int, int, int]) -> None:
        """Refuse image shapes the decoder cannot make (as the GAN generator)."""
        from invbench.models.gan import _check_gan_args

        _check_gan_args(tuple(image_shape), latent_dim=2)  # type: ignore[arg-type]

    def _truncation(self, k: int) -> int:
        t = self.params.truncation
        return k if t == 0 else min(t, k)

    def _prepare(
        self, public: Split | None, *, access: Access, cache: Any, seed: int, quiet: bool
    ) -> None:
        from invbench.models.gan import Generator

        assert isinstance(public, Split)
        k, shape = access.num_classes, access.image_shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            decoder = Generator(shape, latent_dim=k)
        p = self.params
        parts = {
            "attack": self.name, "public": public.digest(), "public_size": len(public),
            "image_shape": list(shape), "epochs": p.epochs, "batch_size": p.train_batch_size,
            "lr": p.lr, "truncation": self._truncation(k), "c": p.c, "seed": int(seed),
        }

        def create() -> dict[str, Any]:
            return self._train(decoder, public, access=access, seed=seed, quiet=quiet)

        self.decoder_meta_ = self.cached_prior(
            cache, access=access, kind="decoder", parts=parts, modules={"decoder": decoder},
            create=create, uses_target=True,
        )
        self.decoder_ = decoder.to(access.device).eval().requires_grad_(False)

    def _train(self, decoder: nn.Module, public: Split, *, access: Access, seed: int,
               quiet: bool) -> dict[str, Any]:
        p = self.params
        dev = access.device
        x = public.x.float()
        vectors = align_vectors(query_probs(access, x), truncation=self._truncation(
            access.num_classes), c=p.c)
        decoder.to(dev).train()
        opt = torch.optim.Adam(decoder.parameters(), lr=p.lr, betas=(0.5, 0.999), amsgrad=True)
        gen = torch.Generator().manual_seed(int(seed))
        n = x.shape[0]
        bs = p.train_batch_size
        steps = p.epochs * max(1, n // bs)
        last = float("nan")
        with progress_bar(steps, f"{self.name}: train decoder", quiet=quiet) as bar:
            for _ in range(p.epochs):
                order = torch.randperm(n, generator=gen)
                for b in range(max(1, n // bs)):
                    idx = order[b * bs : (b + 1) * bs]
                    loss = F.mse_loss(decoder(vectors[idx].to(dev)), x[idx].to(dev))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    last = float(loss.detach())
                    bar.advance()
                bar.update(mse=last)
        decoder.eval()
        return {"final_mse": last}

    def class_vectors(self, labels: Tensor, num_classes: int, *,
                      generator: torch.Generator) -> Tensor:
        """The probability vectors decoded for ``labels`` (N,): one-hot, then spread.

        Runs of equal labels (``per_label`` copies) get mass ``spread * i / (run - 1)``
        moved to a Dirichlet(1) vector for their ``i``-th member.
        """
        n = labels.numel()
        onehot = F.one_hot(labels.cpu(), num_classes).float()
        rank = torch.zeros(n)
        counts: dict[int, int] = {}
        totals = {int(v): int((labels == v).sum()) for v in labels.unique().tolist()}
        for i, v in enumerate(labels.tolist()):
            r = counts.get(v, 0)
            counts[v] = r + 1
            rank[i] = r / max(1, totals[v] - 1)
        # Dirichlet(1) = normalised Exp(1) draws, from the seeded generator
        e = -torch.log(torch.rand((n, num_classes), generator=generator).clamp_min(1e-12))
        q = e / e.sum(dim=1, keepdim=True)
        w = (self.params.spread * rank).unsqueeze(1)
        return (1 - w) * onehot + w * q

    def _invert(self, access: Access, labels: Tensor, *, generator: torch.Generator,
                quiet: bool) -> Reconstruction:
        if self.decoder_ is None:
            raise ConfigError(f"attack '{self.name}' has no decoder yet: call "
                              "prepare(protocol.public, access=...) before invert()")
        cpu_gen = torch.Generator().manual_seed(
            int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device))
        )
        probs = self.class_vectors(labels, access.num_classes, generator=cpu_gen)
        vectors = align_vectors(probs, truncation=self._truncation(access.num_classes),
                                c=self.params.c)
        with torch.inference_mode():
            images = self.decoder_(vectors.to(access.device))
        scores = target_confidence(torch.log(query_probs(access, images).clamp_min(1e-30)),
                                   labels.to(access.device))
        return Reconstruction(images=images, labels=labels, scores=scores)
