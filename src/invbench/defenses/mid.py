"""MID: Mutual Information regularisation based Defense (variational information bottleneck).

Wang, Zhang, Jia. "Improving Robustness to Model Inversion Attacks via Mutual Information
Regularization", AAAI 2021. https://arxiv.org/abs/2009.05241
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from invbench.defenses.base import Defense
from invbench.params import Params
from invbench.registry import register_defense


class VIBClassifier(nn.Module):
    """A classifier whose head is a variational information bottleneck.

    ``features(x)`` (the backbone's) -> a linear layer of width 2k giving the mean ``mu`` and
    the raw scale of a Gaussian code; ``std = softplus(raw - 5)`` as in MID's reference code
    (so training starts with a small, positive noise scale); ``z = mu + std * eps`` ->
    a linear decoder to the logits.

    In training mode ``forward`` draws one sample per input (from torch's global RNG, which
    the training loop seeds). In eval mode it averages the softmax over ``samples`` draws
    (``samples = 0``: use ``mu``, deterministic) and returns the log of that average, so the
    output still reads as logits.

    Eval-time draws come from the model's own :class:`torch.Generator`, never from torch's
    global RNG: :meth:`reseed` restarts it (the runner calls
    :func:`invbench.models.stochastic.reseed` before each attack and each evaluation), and
    without a call it starts from seed 0. The generator lives on the device of the
    computation; it is created on first use and re-created from the seed when the model
    moves to another device. ``stochastic`` is True while eval-time sampling is on.

    Shape: ``(N, C, H, W)`` in [0, 1] -> logits ``(N, num_classes)``.

    Example::

        model = MID(beta=0.01, samples=4).train(protocol, seed=0).eval()
        model.reseed(0)
        a = model(x)
        model.reseed(0)
        torch.equal(a, model(x))  # True
    """

    def __init__(self, backbone: nn.Module, *, num_classes: int, k: int, samples: int) -> None:
        super().__init__()
        feat_dim = int(backbone.feat_dim)  # type: ignore[arg-type]
        self.backbone = backbone
        # The backbone's own head is unused: drop it so it holds no parameters.
        self.backbone.head = nn.Identity()  # type: ignore[assignment]
        self.feat_dim = feat_dim
        self.k = k
        self.samples = samples
        self.encoder = nn.Linear(feat_dim, 2 * k)
        self.head = nn.Linear(k, num_classes)
        self._seed = 0
        self._generator: torch.Generator | None = None

    @property
    def stochastic(self) -> bool:
        """True when eval-time predictions are sampled (``samples > 0``)."""
        return self.samples > 0

    def reseed(self, seed: int) -> None:
        """Restart the eval-time sampling stream from ``seed`` (on the next forward's device)."""
        self._seed = int(seed)
        self._generator = None

    def _eval_generator(self, device: torch.device) -> torch.Generator:
        gen = self._generator
        if gen is None or gen.device != device:
            gen = torch.Generator(device=device).manual_seed(self._seed)
            self._generator = gen
        return gen

    def features(self, x: Tensor) -> Tensor:
        """The backbone's penultimate features (B, feat_dim)."""
        return self.backbone.features(x)  # type: ignore[operator]

    def blocks(self) -> list[nn.Module]:
        """The backbone's blocks (see ``Classifier.blocks``); the bottleneck is not one."""
        return self.backbone.blocks()  # type: ignore[operator,no-any-return]

    def hidden(self, x: Tensor) -> list[Tensor]:
        """The backbone's block outputs (see ``Classifier.hidden``)."""
        return self.backbone.hidden(x)  # type: ignore[operator,no-any-return]

    @property
    def feature_module(self) -> nn.Module:
        """The backbone's module whose output is :meth:`features` (see ``Classifier``)."""
        return self.backbone.feature_module  # type: ignore[return-value]

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The code's mean and standard deviation, each (B, k)."""
        stats = self.encoder(self.features(x))
        mu, raw = stats[:, : self.k], stats[:, self.k :]
        return mu, F.softplus(raw - 5.0)

    def forward_train(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One stochastic pass: (logits, mu, std)."""
        mu, std = self.encode(x)
        z = mu + std * torch.randn_like(std)
        return self.head(z), mu, std

    def forward(self, x: Tensor) -> Tensor:
        """Logits: one sample in training; in eval, see the class docstring."""
        if self.training:
            return self.forward_train(x)[0]
        return self.predict_draws(x, 1)[0]

    def predict_draws(self, x: Tensor, n: int) -> Tensor:
        """``n`` independent eval-time predictions of ``x`` at the cost of one backbone pass.

        Returns (n, B, num_classes): each draw is distributed as ``forward``'s eval-mode output
        (averaging ``samples`` draws of the code), drawn from the model's own generator;
        ``predict_draws(x, 1)[0]`` is ``forward(x)``. Expectation over Transformation (PGD
        against this model) averages the gradient over these draws without re-running the
        backbone ``n`` times.
        """
        mu, std = self.encode(x)
        if self.samples == 0:
            return self.head(mu).unsqueeze(0).expand(n, -1, -1)
        s = self.samples
        eps = torch.randn(
            (n * s, *std.shape), generator=self._eval_generator(std.device),
            device=std.device, dtype=std.dtype,
        )
        z = mu.unsqueeze(0) + std.unsqueeze(0) * eps  # (n*S, B, k)
        logp = torch.log_softmax(self.head(z), dim=-1).view(n, s, *mu.shape[:1], -1)
        return torch.logsumexp(logp, dim=1) - torch.log(torch.tensor(float(s)))

    def predict_seeded(self, x: Tensor, seeds: Tensor) -> Tensor:
        """Eval-time logits with row ``i``'s code drawn from a generator seeded ``seeds[i]``.

        Distributed as :meth:`forward` in eval mode, but an image's answer depends only on
        its own seed, not on the batch it is in: what a served target answers
        (:mod:`invbench.serving.service` seeds each query by a hash of the image). One
        backbone pass; ``samples == 0`` gives the mean code's logits.
        """
        mu, std = self.encode(x)
        if self.samples == 0:
            return self.head(mu)  # type: ignore[no-any-return]
        gen = torch.Generator()
        eps = torch.stack([
            torch.randn((self.samples, self.k), generator=gen.manual_seed(int(s)))
            for s in seeds.tolist()
        ], dim=1).to(std.device, std.dtype)  # (S, B, k)
        logp = torch.log_softmax(self.head(mu.unsqueeze(0) + std.unsqueeze(0) * eps), dim=-1)
        return torch.logsumexp(logp, dim=0) - torch.log(torch.tensor(float(self.samples)))


def gaussian_kl(mu: Tensor, std: Tensor) -> Tensor:
    """KL(N(mu, diag std^2) || N(0, I)): summed over the code, averaged over the batch."""
    return 0.5 * (mu.pow(2) + std.pow(2) - 2.0 * torch.log(std + 1e-8) - 1.0).sum(dim=1).mean()


@register_defense("mid")
class MID(Defense):
    """MID (Wang et al., AAAI 2021): train through a variational information bottleneck.

    MID regularises the mutual information I(X; Y_hat) between the input and the prediction.
    For DNNs it is bounded variationally: the target's head becomes a stochastic code
    ``z ~ N(mu(x), diag std(x)^2)`` with ``mu, std`` from a 2k-wide linear layer on the
    backbone's features, and training minimises::

        CE(decoder(z), y) + beta * KL(N(mu, std^2) || N(0, I))

    Larger ``beta`` squeezes more information out of the prediction: lower attack accuracy,
    lower target accuracy. The paper sweeps beta over roughly 0.001-0.1 on CelebA/MNIST.

    Threat model: a training-time defense; it protects against every access level (white-box,
    black-box, label-only) because it changes the model itself.

    Arguments:
        beta: weight of the KL (information) term; 0 is plain training through the bottleneck.
        k: width of the code (0 = half the backbone's feature width, as in the reference code).
        samples: draws averaged at prediction (0 = deterministic, use the mean code). The
            draws come from the model's own generator, seeded by the run through
            :func:`invbench.models.stochastic.reseed`, never from torch's global RNG.

    Example::

        model = MID(beta=0.01).train(protocol, seed=0)
    """

    class Params(Params):
        """MID's hyperparameters."""
        beta: float = Field(0.01, ge=0.0, description="weight of the KL information term")
        k: int = Field(0, ge=0, description="code width (0 = half the feature width)")
        samples: int = Field(
            1, ge=0, le=1000, description="samples averaged at prediction (0 = use the mean code)"
        )

    def build(self, *, arch: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
        """The backbone for ``arch`` with its head replaced by the bottleneck."""
        backbone = super().build(arch=arch, image_shape=image_shape, num_classes=num_classes)
        k = self.params.k or max(1, int(backbone.feat_dim) // 2)  # type: ignore[arg-type]
        return VIBClassifier(backbone, num_classes=num_classes, k=k, samples=self.params.samples)

    def loss(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy of one stochastic pass plus beta times the KL term."""
        logits, mu, std = model.forward_train(x)  # type: ignore[operator]
        return F.cross_entropy(logits, y) + self.params.beta * gaussian_kl(mu, std)
