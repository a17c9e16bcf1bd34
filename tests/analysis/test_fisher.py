"""Per-layer diagonal Fisher information (TL-DMI's analysis): hand-computed and behaviour."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from invbench.analysis.fisher import FisherResult, diagonal_fisher, fisher_analysis, fisher_layers
from invbench.errors import ConfigError, DataError
from invbench.models import make_classifier


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return make_classifier("cnn-s", image_shape=(1, 8, 8), num_classes=3).eval()


def _data(n: int, seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=gen), torch.randint(0, 3, (n,), generator=gen)


def test_layers_are_the_blocks_then_the_head():
    model = _model()
    layers = fisher_layers(model)
    assert [name for name, _ in layers] == ["1 conv+bn", "2 conv+bn", "3 conv+bn", "4 linear",
                                            "head (linear)"]
    ids = [id(p) for _, ps in layers for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # each parameter once


def test_head_fisher_matches_the_closed_form():
    # d log softmax(W f + b)_y / dW = (e_y - p) f^T and / db = e_y - p, so the head's
    # per-sample squared gradient sums to |e_y - p|^2 (|f|^2 + 1).
    model = _model()
    x, y = _data(12)
    layers = fisher_layers(model)
    got = diagonal_fisher(model, layers, x, y, quiet=True)[-1]
    with torch.no_grad():
        f = model.features(x)
        r = F.one_hot(y, 3).double() - torch.softmax(model.head(f), 1).double()
        per_sample = r.square().sum(1) * (f.double().square().sum(1) + 1.0)
    numel = sum(p.numel() for p in model.head.parameters())
    assert got == pytest.approx(float(per_sample.mean()) / numel, rel=1e-5)


def test_every_layer_matches_per_sample_autograd():
    # An independent computation: torch.func per-sample gradients of the whole model.
    from torch.func import functional_call, grad, vmap

    model = _model()
    x, y = _data(10)
    layers = fisher_layers(model)
    got = diagonal_fisher(model, layers, x, y, quiet=True)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def logp(p, xi, yi):
        out = functional_call(model, (p, buffers), (xi[None],))
        return torch.log_softmax(out, 1)[0].gather(0, yi[None])[0]

    g = vmap(grad(logp), in_dims=(None, 0, 0))(params, x, y)
    by_id = {id(p): name for name, p in model.named_parameters()}
    for (name, ps), value in zip(layers, got, strict=True):
        total = sum(float(g[by_id[id(p)]].double().square().sum()) for p in ps)
        numel = sum(p.numel() for p in ps)
        assert value == pytest.approx(total / (len(x) * numel), rel=1e-4), name


def test_confident_labels_carry_less_information_than_wrong_ones(digits_target, digits_protocol):
    # The score vanishes as p(y|x) -> 1: a trained target's own predictions give a smaller
    # Fisher information in every layer than the labels it finds least likely.
    x = digits_protocol.private_train.x[:40]
    with torch.no_grad():
        logits = digits_target(x)
    own, worst = logits.argmax(1), logits.argmin(1)
    result = fisher_analysis(digits_target, x, own, x, worst, quiet=True)
    assert all(layer.ratio > 10 for layer in result.layers)


def test_shares_sum_to_one_and_frozen_parameters_are_measured_and_restored():
    model = _model()
    for p in model.body.parameters():
        p.requires_grad_(False)  # as TL-DMI leaves its frozen blocks
    x, y = _data(8)
    result = fisher_analysis(model, x, y, x[:4], y[:4], quiet=True)
    assert isinstance(result, FisherResult)
    assert (result.n_classification, result.n_inversion) == (8, 4)
    assert all(layer.classification > 0 for layer in result.layers)
    for task in ("classification", "inversion"):
        assert sum(result.shares(task)) == pytest.approx(1.0)
    assert not any(p.requires_grad for p in model.body.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_stochastic_target_is_reproducible():
    from invbench.defenses import MID

    torch.manual_seed(0)
    model = MID(beta=0.01, samples=2).build(arch="cnn-s", image_shape=(1, 8, 8), num_classes=3)
    x, y = _data(6)
    a = fisher_analysis(model, x, y, x, y, seed=3, quiet=True)
    b = fisher_analysis(model, x, y, x, y, seed=3, quiet=True)
    assert a == b
    assert a.layers[-1].name.startswith("head")  # MID's bottleneck and decoder


def test_bad_inputs_are_one_line_errors():
    model = _model()
    x, y = _data(4)
    with pytest.raises(DataError, match=r"lie in \[0, 1\]"):
        fisher_analysis(model, x * 3, y, x, y, quiet=True)
    with pytest.raises(DataError, match="labels must lie in 0..2"):
        fisher_analysis(model, x, y, x, y + 5, quiet=True)
    with pytest.raises(DataError, match="NaN"):
        fisher_analysis(model, x, y, x * float("nan"), y, quiet=True)
    with pytest.raises(ConfigError, match="no blocks"):
        fisher_layers(torch.nn.Linear(3, 3))
