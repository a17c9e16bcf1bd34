"""FID and KID: closed forms on hand-made moments, unbiasedness, and the metric on digits."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from invbench.errors import ConfigError
from invbench.metrics import EvalContext, Evaluator, evaluate, judge
from invbench.metrics._features import balanced_real_index
from invbench.metrics.fid import frechet_distance, kernel_inception_distance
from invbench.types import Reconstruction


class Projection(nn.Module):
    """Features = pixels times a fixed random (64, d) matrix (d = 64: the pixels themselves)."""

    def __init__(self, d: int, seed: int = 0) -> None:
        super().__init__()
        w = torch.eye(64) if d == 64 else torch.randn(64, d, generator=gen(seed))
        self.register_buffer("w", w)

    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1) @ self.w

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[:, :5]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def evaluator(d: int, name: str) -> Evaluator:
    return Evaluator(Projection(d), arch="resnet", num_classes=5, image_shape=(1, 8, 8),
                     accuracy=1.0, name=name)


def context(protocol, d: int = 8) -> EvalContext:  # noqa: ANN001
    return EvalContext(
        protocol=protocol, standard=evaluator(8, "std"), robust=evaluator(d, "robust")
    )


def as_recon(images: Tensor, labels: Tensor) -> Reconstruction:
    return Reconstruction(images=images, labels=labels, scores=torch.zeros(len(labels)))


# ---- frechet_distance -------------------------------------------------------------------------


def test_fid_of_identical_sets_is_zero() -> None:
    x = torch.randn(200, 6, generator=gen(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_shifted_copy_is_squared_shift() -> None:
    x = torch.randn(100, 5, generator=gen(1), dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    # same covariance, so the trace term vanishes: 1 + 4 + 0.25 + 0 + 9
    assert frechet_distance(x, x + shift) == pytest.approx(14.25, rel=1e-6)


def test_fid_of_diagonal_gaussians_matches_closed_form() -> None:
    # points (+-a, 0), (0, +-b): mean 0, unbiased covariance diag(2 a^2 / 3, 2 b^2 / 3)
    def cross(a: float, b: float) -> Tensor:
        return torch.tensor([[a, 0.0], [-a, 0.0], [0.0, b], [0.0, -b]], dtype=torch.float64)

    x = cross(3, 6)  # covariance diag(6, 24)
    y = cross(6, 3) + torch.tensor([1.0, 2.0], dtype=torch.float64)  # diag(24, 6), mean (1, 2)
    # ||(1, 2)||^2 + (sqrt 6 - sqrt 24)^2 + (sqrt 24 - sqrt 6)^2 = 5 + 6 + 6
    assert frechet_distance(x, y) == pytest.approx(17.0, rel=1e-9)


def test_fid_matches_scipy_on_non_commuting_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    import numpy as np

    mix_a = torch.tensor([[1.0, 0.5, 0, 0], [0, 1, 0.3, 0], [0, 0, 2, 1], [0.2, 0, 0, 1]])
    mix_b = torch.tensor([[2.0, 0, 0, 0], [1, 1, 0, 0], [0, 0.5, 1, 0], [0, 0, 0.7, 0.5]])
    x = torch.randn(300, 4, generator=gen(2)) @ mix_a
    y = torch.randn(250, 4, generator=gen(3)) @ mix_b + 0.3
    xa, ya = x.double().numpy(), y.double().numpy()
    s1, s2 = np.cov(xa, rowvar=False), np.cov(ya, rowvar=False)
    want = (
        np.sum((xa.mean(0) - ya.mean(0)) ** 2)
        + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
    )
    assert frechet_distance(x, y) == pytest.approx(float(want), rel=1e-6)


# ---- kernel_inception_distance ----------------------------------------------------------------


def test_kid_hand_computed_two_points_each() -> None:
    # 1-D, k(x, y) = (x y + 1)^3. X = {0, 1}, Y = {1, 2}:
    # XX off-diagonal k(0, 1) = 1 (twice) / 2 = 1; YY k(1, 2) = 27 (twice) / 2 = 27;
    # XY: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37, times 2 / 4 = 18.5
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    assert kernel_inception_distance(x, y) == pytest.approx(1 + 27 - 18.5)


def test_kid_subsets_of_constant_sets() -> None:
    # every subset of {1,...} vs {2,...} gives k(1,1) + k(2,2) - 2 k(1,2) = 8 + 125 - 54
    x, y = torch.ones(30, 1), torch.full((40, 1), 2.0)
    assert kernel_inception_distance(x, y) == pytest.approx(79.0)
    assert kernel_inception_distance(x, y, subset_size=10, n_subsets=5) == pytest.approx(79.0)


def test_kid_is_unbiased_where_the_biased_estimator_is_not() -> None:
    g = gen(4)
    d, n, draws = 3, 8, 400
    unbiased, biased = [], []
    for _ in range(draws):
        x, y = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
        unbiased.append(kernel_inception_distance(x, y))
        k = lambda a, b: (a.double() @ b.double().T / d + 1) ** 3  # noqa: E731
        biased.append(float(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()))
    u, b = torch.tensor(unbiased), torch.tensor(biased)
    se_u, se_b = u.std() / draws**0.5, b.std() / draws**0.5
    assert abs(float(u.mean())) < 3 * float(se_u)
    assert float(b.mean()) > 10 * float(se_b)


# ---- the reals and the metric ------------------------------------------------------------------


def test_reals_are_class_balanced_without_replacement(digits_protocol) -> None:  # noqa: ANN001
    real_y = digits_protocol.private_train.y
    labels = torch.tensor([0] * 30 + [1] * 10 + [3] * 500)
    idx = balanced_real_index(labels, real_y)
    n_three = int((real_y == 3).sum())  # fewer than 500: all of them, no duplicates
    assert real_y[idx].bincount(minlength=5).tolist() == [30, 10, 0, n_three, 0]
    assert idx.unique().numel() == idx.numel()
    assert torch.equal(idx, balanced_real_index(labels, real_y))  # fixed seed
    assert not torch.equal(idx, balanced_real_index(labels, real_y, seed=1))


def test_metric_scores_private_images_better_than_noise(digits_protocol) -> None:  # noqa: ANN001
    test = digits_protocol.private_test
    ctx = context(digits_protocol)
    real = judge(as_recon(test.x, test.y), ctx, metrics=["fid"])
    noise = evaluate(as_recon(torch.rand(test.x.shape, generator=gen(5)), test.y), ctx,
                     metrics=["fid"])
    assert set(real.scores) == {"fid", "kid", "n_fid"} and real.per_image == {}
    assert real.scores["n_fid"] == len(test) == noise["n_fid"]
    assert real.scores["fid"] < noise["fid"] / 10
    assert real.scores["kid"] < noise["kid"] / 10
    # the wiring: robust features of the reconstructions vs the balanced reals
    idx = balanced_real_index(test.y, digits_protocol.private_train.y)
    fake = ctx.robust.features(test.x)
    reals = ctx.robust.features(digits_protocol.private_train.x[idx])
    assert real.scores["fid"] == pytest.approx(frechet_distance(fake, reals), rel=1e-6)
    assert real.scores["kid"] == pytest.approx(kernel_inception_distance(fake, reals), rel=1e-6)


def test_fid_is_none_below_the_feature_dimension(digits_protocol) -> None:  # noqa: ANN001
    test = digits_protocol.private_test
    rec = as_recon(test.x[:20], test.y[:20])
    out = evaluate(rec, context(digits_protocol, d=64), metrics=["fid"])  # 20 < D = 64
    assert out["fid"] is None and out["kid"] is not None and out["n_fid"] == 20
    assert evaluate(rec, context(digits_protocol, d=8), metrics=["fid"])["fid"] is not None


def test_named_metric_without_robust_evaluator_is_refused(digits_protocol) -> None:  # noqa: ANN001
    test = digits_protocol.private_test
    ctx = EvalContext(protocol=digits_protocol, standard=evaluator(8, "std"))
    with pytest.raises(ConfigError, match="robust"):
        evaluate(as_recon(test.x, test.y), ctx, metrics=["fid"])
