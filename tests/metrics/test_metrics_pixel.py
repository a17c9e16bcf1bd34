"""PSNR and SSIM: exact values on hand-made images, and the metric on digits."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from invbench.metrics import EvalContext, Evaluator, evaluate, judge
from invbench.metrics.pixel import PSNR_CAP, psnr, ssim, ssim_window_size
from invbench.types import Reconstruction

C1, C2 = 0.01**2, 0.03**2


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Flatten(nn.Module):
    def features(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)[:, :5]


def context(protocol) -> EvalContext:  # noqa: ANN001
    ev = Evaluator(Flatten(), arch="resnet", num_classes=5, image_shape=(1, 8, 8), accuracy=1.0)
    return EvalContext(protocol=protocol, standard=ev)  # no robust evaluator: not needed


def as_recon(images: Tensor, labels: Tensor) -> Reconstruction:
    return Reconstruction(images=images, labels=labels, scores=torch.zeros(len(labels)))


# ---- psnr ---------------------------------------------------------------------------------------


def test_psnr_of_mse_one_hundredth_is_twenty_db() -> None:
    a = torch.zeros(2, 1, 5, 5)
    b = a.clone()
    b[0, 0, 2, 3] = 0.5  # one of 25 values off by 0.5: MSE 0.25 / 25 = 0.01
    b[1] = 0.1  # every value off by 0.1 (float32): MSE ~ 0.01
    got = psnr(a, b)
    assert got.shape == (2,)
    assert float(got[0]) == pytest.approx(20.0, abs=1e-9)
    assert float(got[1]) == pytest.approx(20.0, abs=1e-5)


def test_psnr_of_identical_images_is_capped() -> None:
    x = torch.rand(3, 1, 8, 8, generator=gen(0))
    assert psnr(x, x).tolist() == [PSNR_CAP] * 3 == [100.0] * 3
    near = x.clone()
    near[0, 0, 0, 0] += 1e-7  # MSE ~ 1.6e-16: 158 dB, capped too
    assert float(psnr(x, near)[0]) == 100.0


# ---- ssim ---------------------------------------------------------------------------------------


def test_window_shrinks_to_the_largest_odd_size() -> None:
    sizes = [(28, 28), (8, 8), (10, 12), (5, 9), (2, 2), (1, 7)]
    assert [ssim_window_size(h, w) for h, w in sizes] == [11, 7, 9, 5, 1, 1]


def test_ssim_of_identical_images_is_one() -> None:
    for shape in [(2, 1, 8, 8), (2, 3, 28, 28)]:
        x = torch.rand(shape, generator=gen(1))
        assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    a, b = torch.full((1, 1, 8, 8), 0.2), torch.full((1, 1, 8, 8), 0.6)
    m1, m2 = 0.2, 0.6
    want = (2 * m1 * m2 + C1) / (m1**2 + m2**2 + C1)  # variances 0: the contrast term is 1
    assert float(ssim(a, b)[0]) == pytest.approx(want, rel=1e-6)


def test_ssim_averages_positions_of_a_one_pixel_window() -> None:
    # 1x2 images: the window is 1x1, so each pixel scores (2 a b + C1) / (a^2 + b^2 + C1)
    a = torch.tensor([[[[0.2, 0.4]]]], dtype=torch.float64)
    b = torch.tensor([[[[0.2, 0.8]]]], dtype=torch.float64)
    want = (1.0 + (2 * 0.4 * 0.8 + C1) / (0.4**2 + 0.8**2 + C1)) / 2
    assert float(ssim(a, b)[0]) == pytest.approx(want, rel=1e-12)


def test_ssim_uses_a_gaussian_window_of_sigma_one_and_a_half() -> None:
    # 11x11 images: exactly one window position; moments weighted by the 2-D Gaussian
    x = torch.rand(11, 11, generator=gen(2), dtype=torch.float64)
    y = torch.rand(11, 11, generator=gen(3), dtype=torch.float64)
    g = [math.exp(-((i - 5) ** 2) / (2 * 1.5**2)) for i in range(11)]
    w = torch.tensor([[gi * gj for gj in g] for gi in g], dtype=torch.float64)
    w = w / w.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx**2, (w * y * y).sum() - my**2
    cxy = (w * x * y).sum() - mx * my
    want = (2 * mx * my + C1) * (2 * cxy + C2) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
    assert float(ssim(x[None, None], y[None, None])[0]) == pytest.approx(float(want), rel=1e-10)


def test_ssim_decreases_with_added_noise(digits_protocol) -> None:  # noqa: ANN001
    x = digits_protocol.private_test.x[:10]
    noise = torch.randn(x.shape, generator=gen(4))
    scores = [ssim(x, (x + s * noise).clamp(0, 1)) for s in (0.02, 0.1, 0.3)]
    assert bool((scores[0] > scores[1]).all()) and bool((scores[1] > scores[2]).all())
    assert bool((scores[0] < 1).all())


# ---- the metric ---------------------------------------------------------------------------------


def test_training_images_are_their_own_nearest(digits_protocol) -> None:  # noqa: ANN001
    train = digits_protocol.private_train
    rec = as_recon(train.x[::40], train.y[::40])
    got = judge(rec, context(digits_protocol), metrics=["pixel"])
    assert got.scores == {"psnr": 100.0, "ssim": pytest.approx(1.0, abs=1e-9)}
    assert set(got.per_image) == {"img_psnr", "img_ssim", "img_nearest"}
    assert torch.equal(train.x[got.per_image["img_nearest"]], rec.images)


def test_private_test_images_beat_noise(digits_protocol) -> None:  # noqa: ANN001
    test, train = digits_protocol.private_test, digits_protocol.private_train
    ctx = context(digits_protocol)
    real = judge(as_recon(test.x, test.y), ctx, metrics=["pixel"])
    noise = evaluate(as_recon(torch.rand(test.x.shape, generator=gen(5)), test.y), ctx,
                     metrics=["pixel"])
    assert real.scores["psnr"] > noise["psnr"] + 5
    assert real.scores["ssim"] > noise["ssim"] + 0.3
    n = len(test)
    assert all(v.shape == (n,) for v in real.per_image.values())
    # the nearest image: same class, and no same-class training image is closer (brute force)
    idx = real.per_image["img_nearest"]
    assert torch.equal(train.y[idx], test.y)
    sq = torch.cdist(test.x.flatten(1).double(), train.x.flatten(1).double()).square()
    sq[test.y[:, None] != train.y[None, :]] = float("inf")
    assert torch.allclose(sq[torch.arange(n), idx], sq.min(dim=1).values)
    # and the per-image scores are psnr/ssim to that image
    assert torch.allclose(real.per_image["img_psnr"].double(), psnr(test.x, train.x[idx]))
    assert torch.allclose(real.per_image["img_ssim"].double(), ssim(test.x, train.x[idx]))
    assert real.scores["psnr"] == pytest.approx(float(real.per_image["img_psnr"].double().mean()))
