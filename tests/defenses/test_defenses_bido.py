"""BiDO (Peng et al., KDD 2022): dependency measures, stability, and what training does."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invbench.defenses import BiDO, NoDefense, TrainConfig
from invbench.defenses.bido import coco, gaussian_kernel, hsic_nocco, linear_kernel
from invbench.errors import ConfigError
from invbench.registry import DEFENSES
from invbench.training import evaluate_accuracy


def test_registered_with_the_references_defaults() -> None:
    assert DEFENSES.get("bido") is BiDO
    p = BiDO().params
    assert (p.lambda_x, p.lambda_y, p.dependency, p.sigma) == (0.05, 0.5, "hsic", 5.0)


def test_kernels_and_measures_match_their_formulas() -> None:
    torch.manual_seed(0)
    x = torch.rand(7, 3, 2, 2)
    kx = gaussian_kernel(x, 2.0)
    flat = x.flatten(1)
    d = flat.shape[1]
    i, j = 1, 4
    want = torch.exp(-((flat[i] - flat[j]) ** 2).sum() / (2 * 2.0**2 * d))
    torch.testing.assert_close(kx[i, j], want)
    y = F.one_hot(torch.tensor([0, 1, 1, 2, 0, 2, 1]), 3).float()
    ky = linear_kernel(y)
    torch.testing.assert_close(ky, y @ y.t())
    # the reference's formula with explicit inverses, in float64
    m = 7
    h = torch.eye(m, dtype=torch.float64) - 1.0 / m
    kxc, kyc = kx.double() @ h, ky.double() @ h
    eye = torch.eye(m, dtype=torch.float64)
    rx = kxc @ torch.inverse(kxc + 1e-5 * m * eye)
    ry = kyc @ torch.inverse(kyc + 1e-5 * m * eye)
    torch.testing.assert_close(hsic_nocco(kx, ky).double(), (rx * ry.t()).sum(), rtol=1e-5,
                               atol=1e-6)
    k, l_ = h @ kx.double() @ h, h @ ky.double() @ h
    want_coco = torch.linalg.matrix_norm(k @ l_).sqrt() / m
    torch.testing.assert_close(coco(kx, ky).double(), want_coco, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", ["identical-images", "one-class", "two-rows", "zero-features"])
def test_stays_finite_on_degenerate_batches(case: str) -> None:
    x = torch.rand(16, 1, 8, 8)
    y = torch.arange(16) % 5
    z = torch.rand(16, 32)
    if case == "identical-images":
        x = x[:1].expand(16, -1, -1, -1)
    elif case == "one-class":
        y = torch.zeros(16, dtype=torch.long)
    elif case == "two-rows":
        x, y, z = x[:2], y[:2], z[:2]
    else:
        z = torch.zeros_like(z)
    z.requires_grad_(True)
    for dependency in ("hsic", "coco"):
        dx, dy = BiDO(dependency=dependency).dependencies([z], x, y, 5)
        assert torch.isfinite(dx) and torch.isfinite(dy), (case, dependency)
        (g,) = torch.autograd.grad(dx - dy, z)
        assert torch.isfinite(g).all(), (case, dependency)
    if case in ("identical-images", "one-class"):  # a constant kernel carries no dependency
        dx, dy = BiDO().dependencies([z], x, y, 5)
        assert float((dx if case == "identical-images" else dy).detach()) == 0.0


def test_training_lowers_the_input_dependency_and_keeps_the_label_one(digits_protocol) -> None:
    x_all, y_all = digits_protocol.private_train.x, digits_protocol.private_train.y
    idx = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(0))[:128]
    x, y = x_all[idx], y_all[idx]  # a mixed-class batch (the split is sorted by class)
    probe = BiDO()
    cfg = TrainConfig(epochs=4)

    def measured(defense):
        model = defense.train(digits_protocol, config=cfg, seed=0)
        with torch.no_grad():
            dx, dy = probe.dependencies(model.hidden(x), x, y, 5)
        acc = evaluate_accuracy(model, digits_protocol.private_test.x,
                                digits_protocol.private_test.y)
        return float(dx), float(dy), acc

    torch.manual_seed(0)
    untrained = NoDefense().build(arch="auto", image_shape=(1, 8, 8), num_classes=5).eval()
    with torch.no_grad():
        _, dy0 = probe.dependencies(untrained.hidden(x), x, y, 5)
    dx_plain, _, _ = measured(NoDefense())
    dx_bido, dy_bido, acc = measured(BiDO())
    # measured: d(X, Z) 79.5 plain vs 65.5 BiDO; d(Z, Y) 6.4 untrained -> 15.2; acc 0.98
    assert dx_bido < 0.9 * dx_plain, (dx_bido, dx_plain)
    assert dy_bido > 2 * float(dy0), (dy_bido, float(dy0))
    assert acc > 0.9, acc


def test_bad_params() -> None:
    with pytest.raises(ConfigError, match="'dependency' parameter of defense 'bido'"):
        BiDO(dependency="mmd")
    with pytest.raises(ConfigError, match="'sigma' parameter"):
        BiDO(sigma=0.0)
