"""Updates-Leak: what an update's data was, from the change in a model's answers.

Salem et al., USENIX Security 2020 (reference code: github.com/AhmedSalem2/Updates-Leak).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from invbench.access import Access
from invbench.attacks.base import UpdateAttack
from invbench.attacks.components import query_probs
from invbench.data.protocol import Split
from invbench.errors import ConfigError, DataError
from invbench.params import Params
from invbench.progress import progress_bar
from invbench.registry import register_attack
from invbench.training.update import (
    UpdateRecipe,
    apply_update,
    draw_label_mixtures,
    draw_samples,
)
from invbench.types import UpdateInference


class _Standardize(nn.Module):
    """Per-feature standardisation of posterior differences (statistics kept as buffers)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))

    def fit(self, x: Tensor) -> _Standardize:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-8))
        return self

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _mlp(width_in: int, hidden: tuple[int, int], width_out: int, dropout: tuple[float, float],
         *, act: type[nn.Module] = nn.LeakyReLU) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width_in, hidden[0]), act(), nn.Dropout(dropout[0]),
        nn.Linear(hidden[0], hidden[1]), act(), nn.Dropout(dropout[1]),
        nn.Linear(hidden[1], width_out),
    )


class _ImageEncoder(nn.Module):
    """The autoencoder's encoder: an image to a latent code in (-1, 1)."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int) -> None:
        super().__init__()
        c, h, w = image_shape
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 512), nn.ReLU(),
                                 nn.Linear(512, latent_dim), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def posterior_difference(before: Tensor, after: Tensor) -> Tensor:
    """The attack's input: ``before - after`` probabilities on the probe set, flattened and
    scaled to unit L2 norm.

    ``before`` (P, K) and ``after`` (V, P, K) or (P, K); returns (V, P * K) or (P * K,).
    The scaling is ours (the paper feeds the raw difference): the shadow models and the
    target differ in how confident they are on the probes, so the size of a difference
    does not transfer from one to the other, its direction does.
    """
    diff = before - after
    diff = diff.reshape(*diff.shape[:-2], -1)
    return diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@register_attack("update-leaks")
class UpdateLeaks(UpdateAttack):
    """Updates-Leak: infer an update set's labels and reconstruct its sample (black-box).

    Paper: A. Salem, A. Bhattacharya, M. Backes, M. Fritz, Y. Zhang, "Updates-Leak: Data
    Set Inference and Reconstruction Attacks in Online Learning", USENIX Security 2020,
    https://arxiv.org/abs/1904.01067. One of the two black-box attacks the MID paper (Wang
    et al., AAAI 2021) evaluates.

    Threat model: black-box access to an online-learning deployment — probability vectors
    (after the deployment's output processing) from the model before an update (version 0)
    and after each update (versions 1..n, each the original model fine-tuned on a small
    private update set), for a fixed *probe set* of the attacker's images; public images of
    the same domain (other classes); and the deployment's update recipe (the paper's
    assumption). No gradients, no module.

    The attacker's input for an update is the *posterior difference*: the probe set's
    probabilities before minus after, flattened (P x K). :meth:`prepare` builds training
    pairs without querying the target: it trains ``shadow_models`` shadow classifiers on
    half of the public split (its classes relabelled 0..K-1), updates each
    ``shadow_updates / shadow_models`` times with update sets drawn from the other half by
    the same recipe (:func:`~invbench.training.apply_update`), and records each update's
    posterior difference with its label distribution (and sample). Then:

    * ``variant="sample"`` (single-sample updates: the paper's single-sample label
      inference and reconstruction attacks): an MLP (128-64, dropout 0.2/0.4) predicts the
      sample's label from the difference; an autoencoder is trained on the public images,
      its decoder (invbench's DCGAN generator) transferred to the attack model, and an MLP
      encoder (256-128, dropout 0.5, tanh) from the difference to the latent code trained
      with the decoder on pixel MSE.
    * ``variant="labels"`` (multi-sample updates of ``update_size`` samples: the
      label-distribution estimation attack): an MLP (256-128, dropout 0.5) predicts the
      update set's label distribution, trained with KL divergence.

    All networks: Adam (lr 1e-3, weight decay 1e-5), batch 128, ``attack_epochs`` epochs
    (the paper's 50). The shadow stage is cached: it never saw the target, so all targets
    of a run share it. :meth:`infer_updates` queries the probe set once per version: query
    cost ``probe_size x (updates + 1)``, nothing in prepare.

    Defaults that differ from the paper (sized for a CPU): ``shadow_updates`` 2,000 (the
    paper's 10,000), ``shadow_epochs`` 5. The probe set is uniform noise images
    (``probes="noise"``; the paper probes with samples of the target's data): here the
    attacker's images are of other classes than the target's, so public probes are familiar
    to the shadow models and foreign to the target, while noise is equally foreign to both
    and transfers better (digits, 1,000 shadow updates: label-distribution top-1 0.43 with
    noise probes against 0.23 with public ones, chance 0.20; single-sample labels 0.60 with
    either). The posterior differences are standardised per
    feature with the shadow statistics (the paper feeds them raw: a one-step update with lr
    1e-3 moves probabilities by ~1e-4, too little for an MLP to learn from unscaled); the
    label distributions of multi-sample update sets are drawn from a flat Dirichlet over the
    classes (the paper draws uniform random subsets, whose distributions are all close to
    the class prior, so a constant guess would score nearly as well). The shadow
    classifier's architecture is ``shadow_arch`` (the paper assumes the target's).

    Example::

        updated = [apply_update(model, x[i:i+1], y[i:i+1]) for i in range(10)]
        access = BlackBox.local(model, num_classes=5, image_shape=(1, 8, 8), updates=updated)
        attack = UpdateLeaks(shadow_updates=500)
        attack.prepare(protocol.public, access=access)
        inferred = attack.infer_updates(access)   # .images (10, 1, 8, 8), .label_dist (10, 5)
    """

    access: ClassVar[str] = "black-box"
    needs_public: ClassVar[bool] = True

    class Params(Params):
        """The update scenario, the shadow models and the attack networks."""

        variant: Literal["sample", "labels"] = Field(
            "sample", description="sample: single-sample updates, reconstructed; labels: "
            "multi-sample updates, their label distribution inferred")
        update_size: int = Field(
            100, ge=2, description="samples per update set (variant labels; sample: 1)")
        update_lr: float = Field(1e-3, gt=0, description="the deployment's update: SGD lr")
        update_momentum: float = Field(0.9, ge=0, lt=1, description="... SGD momentum")
        update_epochs: int = Field(1, ge=1, description="... epochs over the update set")
        update_batch_size: int = Field(64, ge=1, description="... batch size")
        probe_size: int = Field(100, ge=1, description="probe images queried per version")
        probes: Literal["noise", "public", "blend"] = Field(
            "noise", description="the probe set: uniform noise (default), public images (the "
            "paper's choice), or blends of two public images")
        shadow_arch: str = Field("auto", description="the shadow classifiers' architecture")
        shadow_epochs: int = Field(5, ge=1, description="shadow classifier training epochs")
        shadow_models: int = Field(1, ge=1, description="shadow classifiers trained")
        shadow_updates: int = Field(2000, ge=2, description="shadow updates, all models")
        attack_epochs: int = Field(50, ge=1, description="attack networks' training epochs")
        attack_lr: float = Field(1e-3, gt=0, description="attack networks' Adam lr")
        latent_dim: int = Field(64, ge=2, description="autoencoder latent width (sample)")
        ae_epochs: int = Field(20, ge=1, description="autoencoder epochs on public (sample)")

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.probes_: Tensor | None = None
        self.nets_: dict[str, nn.Module] | None = None
        self.shadow_meta_: dict[str, Any] | None = None

    def update_recipe(self) -> UpdateRecipe:
        """The deployment's update recipe (the ``update_*`` parameters)."""
        p = self.params
        return UpdateRecipe(lr=p.update_lr, momentum=p.update_momentum,
                            epochs=p.update_epochs, batch_size=p.update_batch_size)

    def update_size(self) -> int:
        """1 for ``variant="sample"``, else ``update_size``."""
        return 1 if self.params.variant == "sample" else int(self.params.update_size)

    def check(self, *, image_shape: tuple[int, int, int]) -> None:
        """The shadow architecture and (variant sample) the decoder fit ``image_shape``."""
        from invbench.models import make_classifier
        from invbench.models.classifiers import resolve_arch
        from invbench.models.gan import _check_gan_args

        make_classifier(resolve_arch(self.params.shadow_arch, image_shape),
                        image_shape=image_shape, num_classes=2)
        if self.params.variant == "sample":
            _check_gan_args(tuple(image_shape), latent_dim=self.params.latent_dim)  # type: ignore[arg-type]

    # -- prepare: shadow models, their updates, the attack networks -----------------------

    def _prepare(self, public: Split | None, *, access: Access, cache: Any, seed: int,
                 quiet: bool) -> None:
        assert isinstance(public, Split)
        p = self.params
        k, shape = access.num_classes, access.image_shape
        classes = sorted(int(c) for c in public.y.unique().tolist())[:k]
        keep = torch.isin(public.y, torch.tensor(classes))
        x = public.x[keep].float()
        y = torch.searchsorted(torch.tensor(classes), public.y[keep])
        need = p.probe_size + 4
        if x.shape[0] < need:
            raise DataError(f"attack '{self.name}': the public split has {x.shape[0]} images "
                            f"of its first {k} classes; probe_size={p.probe_size} needs more "
                            f"than {need}")
        gen = torch.Generator().manual_seed(int(seed))
        order = torch.randperm(x.shape[0], generator=gen)
        probe_idx = order[: p.probe_size]
        rest = order[p.probe_size:]
        train_idx, pool_idx = rest[: rest.numel() // 2], rest[rest.numel() // 2:]
        self.probes_ = self._probe_images(x, probe_idx, gen)

        width = p.probe_size * k
        nets: dict[str, nn.Module] = {"scale": _Standardize(width)}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            if p.variant == "sample":
                from invbench.models.gan import Generator

                nets["label_net"] = _mlp(width, (128, 64), k, (0.2, 0.4))
                nets["encoder"] = nn.Sequential(
                    _mlp(width, (256, 128), p.latent_dim, (0.0, 0.5), act=nn.ReLU), nn.Tanh())
                nets["ae_encoder"] = _ImageEncoder(shape, p.latent_dim)
                nets["decoder"] = Generator(shape, latent_dim=p.latent_dim)
            else:
                nets["label_net"] = _mlp(width, (256, 128), k, (0.5, 0.5))
        parts = {
            "attack": self.name, "public": public.digest(), "num_classes": k,
            "image_shape": list(shape), "seed": int(seed),
            **{name: v for name, v in p.model_dump().items()},
        }

        def create() -> dict[str, Any]:
            return self._train(nets, x, y, probe_idx=probe_idx, train_idx=train_idx,
                               pool_idx=pool_idx, k=k, device=access.device, seed=seed,
                               quiet=quiet)

        self.shadow_meta_ = self.cached_prior(
            cache, access=access, kind="update-leaks", parts=parts, modules=nets,
            create=create, uses_target=False,
        )
        self.nets_ = {n: m.to(access.device).eval().requires_grad_(False)
                      for n, m in nets.items()}

    def _probe_images(self, x: Tensor, idx: Tensor, gen: torch.Generator) -> Tensor:
        """The probe set (``probes``): public images, uniform noise, or blends of two."""
        kind = self.params.probes
        if kind == "public":
            return x[idx]
        if kind == "noise":
            return torch.rand((idx.numel(), *x.shape[1:]), generator=gen)
        other = torch.randperm(x.shape[0], generator=gen)[: idx.numel()]
        return 0.5 * (x[idx] + x[other])

    def _train(self, nets: dict[str, nn.Module], x: Tensor, y: Tensor, *, probe_idx: Tensor,
               train_idx: Tensor, pool_idx: Tensor, k: int, device: torch.device, seed: int,
               quiet: bool) -> dict[str, Any]:
        diffs, dists, samples = self._shadow_pairs(
            x, y, probe_idx=probe_idx, train_idx=train_idx, pool_idx=pool_idx, k=k,
            device=device, seed=seed, quiet=quiet)
        scale = nets["scale"].fit(diffs)
        feats = scale(diffs)
        meta: dict[str, Any] = {"shadow_models": self.params.shadow_models,
                                "shadow_updates": int(diffs.shape[0])}
        meta["label_kl"] = self._fit(
            nets["label_net"], feats, dists, loss="kl", seed=seed, device=device,
            desc=f"{self.name}: label network", quiet=quiet)
        if self.params.variant == "sample":
            assert samples is not None
            encoder, decoder = nets["ae_encoder"], nets["decoder"]
            meta["ae_mse"] = self._fit(
                nn.Sequential(encoder, decoder), x, x, loss="mse", seed=seed, device=device,
                desc=f"{self.name}: autoencoder", quiet=quiet, epochs=self.params.ae_epochs)
            meta["recon_mse"] = self._fit(
                nn.Sequential(nets["encoder"], decoder), feats, samples, loss="mse",
                seed=seed + 1, device=device, desc=f"{self.name}: reconstruction network",
                quiet=quiet)
        return meta

    def _shadow_pairs(self, x: Tensor, y: Tensor, *, probe_idx: Tensor, train_idx: Tensor,
                      pool_idx: Tensor, k: int, device: torch.device, seed: int, quiet: bool
                      ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Train the shadow models and update each: (differences, distributions, samples)."""
        from invbench.models import make_classifier
        from invbench.models.classifiers import resolve_arch
        from invbench.training import train_classifier

        p = self.params
        shape = tuple(x.shape[1:])
        arch = resolve_arch(p.shadow_arch, shape)  # type: ignore[arg-type]
        recipe = self.update_recipe()
        probes = self.probes_.to(device)  # type: ignore[union-attr]
        pool_y = y[pool_idx]
        gen = torch.Generator().manual_seed(int(seed) + 7)
        per_model = [p.shadow_updates // p.shadow_models
                     + (1 if s < p.shadow_updates % p.shadow_models else 0)
                     for s in range(p.shadow_models)]
        diffs, dists, samples = [], [], []
        with progress_bar(p.shadow_updates, f"{self.name}: shadow updates", quiet=quiet) as bar:
            for s, n_updates in enumerate(per_model):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(seed) + 100 + s)
                    shadow = make_classifier(arch, image_shape=shape, num_classes=k)  # type: ignore[arg-type]
                train_classifier(shadow, x[train_idx], y[train_idx], epochs=p.shadow_epochs,
                                 seed=int(seed) + s, device=device, quiet=True,
                                 desc=f"{self.name}: shadow model {s + 1}")
                shadow.eval()
                with torch.inference_mode():
                    before = torch.softmax(shadow(probes).float(), dim=1)
                if p.variant == "sample":
                    present = pool_y.unique()
                    labels = present[torch.randint(present.numel(), (n_updates,),
                                                   generator=gen)]
                    sets = [i.view(1) for i in draw_samples(pool_y, labels, generator=gen)]
                    d = F.one_hot(labels, k).float()
                else:
                    classes = sorted(pool_y.unique().tolist())
                    sets, d = draw_label_mixtures(pool_y, n=n_updates, size=p.update_size,
                                                  classes=classes, num_classes=k,
                                                  generator=gen)
                for j, idx in enumerate(sets):
                    sel = pool_idx[idx]
                    upd = apply_update(shadow, x[sel], y[sel], recipe=recipe,
                                       seed=int(seed) * 1_000_003 + s * 100_003 + j)
                    with torch.inference_mode():
                        after = torch.softmax(upd(probes).float(), dim=1)
                    diffs.append(posterior_difference(before, after).cpu())
                    if p.variant == "sample":
                        samples.append(x[sel[0]])
                    bar.advance()
                dists.append(d)
        return (torch.stack(diffs), torch.cat(dists),
                torch.stack(samples) if samples else None)

    def _fit(self, net: nn.Module, inputs: Tensor, targets: Tensor, *, loss: str, seed: int,
             device: torch.device, desc: str, quiet: bool, epochs: int | None = None) -> float:
        """Train ``net`` (Adam 1e-3, wd 1e-5, batch 128) on ``inputs -> targets``; last loss."""
        epochs = epochs or self.params.attack_epochs
        net.to(device).train()
        opt = torch.optim.Adam(net.parameters(), lr=self.params.attack_lr, weight_decay=1e-5)
        gen = torch.Generator().manual_seed(int(seed))
        n = inputs.shape[0]
        batches = max(1, n // 128)
        last = float("nan")
        with torch.random.fork_rng(devices=[]), \
                progress_bar(epochs * batches, desc, quiet=quiet) as bar:
            torch.manual_seed(int(seed))
            for _ in range(epochs):
                order = torch.randperm(n, generator=gen)
                for b in range(batches):
                    idx = order[b * 128: (b + 1) * 128]
                    if idx.numel() < 2:
                        continue
                    out = net(inputs[idx].to(device))
                    target = targets[idx].to(device)
                    if loss == "kl":
                        value = F.kl_div(F.log_softmax(out, dim=1), target,
                                         reduction="batchmean")
                    else:
                        value = F.mse_loss(out, target)
                    opt.zero_grad(set_to_none=True)
                    value.backward()
                    opt.step()
                    last = float(value.detach())
                    bar.advance()
                bar.update(loss=last)
        net.eval()
        return last

    # -- infer ---------------------------------------------------------------------------

    def _infer_updates(self, access: Access, *, generator: torch.Generator,
                       quiet: bool) -> UpdateInference:
        if self.nets_ is None or self.probes_ is None:
            raise ConfigError(f"attack '{self.name}' is not prepared: call "
                              "prepare(protocol.public, access=...) before infer_updates()")
        probes = self.probes_.to(access.device)
        before = query_probs(access, probes)
        after = []
        with progress_bar(access.versions - 1, f"{self.name}: query versions",
                          quiet=quiet) as bar:
            for v in range(1, access.versions):
                after.append(access.predict_proba(probes, version=v))  # type: ignore[attr-defined]
                bar.advance()
        feats = self.nets_["scale"](posterior_difference(before, torch.stack(after)).float())
        with torch.inference_mode():
            dist = torch.softmax(self.nets_["label_net"](feats), dim=1)
            images = None
            if self.params.variant == "sample":
                images = self.nets_["decoder"](self.nets_["encoder"](feats))
        return UpdateInference(label_dist=dist, images=images)
