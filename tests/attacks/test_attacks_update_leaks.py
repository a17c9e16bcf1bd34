"""Updates-Leak: the update scenario, its scores, and the attack through the runner."""

from __future__ import annotations

import math

import pytest
import torch

from invbench.access import BlackBox
from invbench.errors import AccessError, ConfigError, DataError
from invbench.metrics.updates import update_baseline, update_scores
from invbench.training import UpdateRecipe, apply_update, draw_label_mixtures, draw_samples
from invbench.types import UpdateInference


def test_update_changes_a_copy_deterministically_and_keeps_frozen_parameters(
        digits_protocol, digits_target):
    p = digits_protocol
    x, y = p.private_test.x[:3], p.private_test.y[:3]
    before = {k: v.clone() for k, v in digits_target.state_dict().items()}
    a = apply_update(digits_target, x, y, recipe=UpdateRecipe(lr=0.05), seed=1)
    b = apply_update(digits_target, x, y, recipe=UpdateRecipe(lr=0.05), seed=1)
    assert all(torch.equal(v, digits_target.state_dict()[k]) for k, v in before.items())
    changed = [k for k, v in a.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    # BatchNorm statistics are not updated by a one-batch update
    assert all("running" not in k for k in changed)
    # the update raises the updated samples' own class probabilities
    with torch.no_grad():
        p0 = torch.softmax(digits_target(x), 1)[torch.arange(3), y]
        p1 = torch.softmax(a(x), 1)[torch.arange(3), y]
    assert (p1 > p0).all()

    target = apply_update(digits_target, x, y, seed=0)
    first = next(iter(target.blocks()))
    first.requires_grad_(False)
    kept = {k: v.clone() for k, v in first.state_dict().items()}
    again = apply_update(target, x, y, recipe=UpdateRecipe(lr=0.1), seed=0)
    for k, v in next(iter(again.blocks())).state_dict().items():
        assert torch.equal(v, kept[k]), f"frozen {k} changed"


def test_update_recipe_and_set_draws_are_checked():
    with pytest.raises(ConfigError, match="lr"):
        UpdateRecipe(lr=0)
    with pytest.raises(ConfigError, match="epochs"):
        UpdateRecipe(epochs=0)
    y = torch.tensor([0, 0, 0, 1, 1, 2])
    gen = torch.Generator().manual_seed(0)
    idx = draw_samples(y, torch.tensor([0, 0, 0, 1]), generator=gen)
    assert y[idx].tolist() == [0, 0, 0, 1] and len(set(idx[:3].tolist())) == 3
    with pytest.raises(ConfigError, match="class 3"):
        draw_samples(y, torch.tensor([3]), generator=gen)
    sets, dist = draw_label_mixtures(y, n=20, size=5, classes=[0, 1, 2], generator=gen)
    assert len(sets) == 20 and all(s.numel() == 5 for s in sets)
    for s, d in zip(sets, dist, strict=True):
        assert torch.allclose(torch.bincount(y[s], minlength=3).float() / 5, d)
    assert dist.std(0).min() > 0, "the proportions vary from set to set"


def test_service_answers_each_version_and_counts_them_all(digits_protocol, digits_target):
    p = digits_protocol
    x, y = p.private_test.x[:1], p.private_test.y[:1]
    updated = apply_update(digits_target, x, y, recipe=UpdateRecipe(lr=0.5), seed=0)
    acc = BlackBox.local(digits_target, num_classes=5, image_shape=p.image_shape,
                         updates=[updated], budget=25)
    assert acc.versions == 2
    probes = p.public.x[:10]
    before, after = acc.predict_proba(probes), acc.predict_proba(probes, version=1)
    assert not torch.allclose(before, after)
    with torch.no_grad():
        assert torch.allclose(after, torch.softmax(updated(probes), 1), atol=1e-6)
    assert acc.queries == 20
    with pytest.raises(AccessError, match="version"):
        acc.predict_proba(probes, version=2)
    from invbench.errors import QueryBudgetExceeded

    with pytest.raises(QueryBudgetExceeded):
        acc.predict_proba(probes, version=1)


def test_update_scores_match_a_hand_computed_case():
    true = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    pred = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    images = torch.zeros(2, 1, 4, 4)
    out = update_scores(UpdateInference(label_dist=pred, images=images + 0.5),
                        true_dist=true, true_images=images)
    # KL: row 1 = log(1 / 0.5) = log 2, row 2 = 0 -> mean log(2) / 2
    assert math.isclose(out["label_kl"], math.log(2) / 2, rel_tol=1e-9)
    assert math.isclose(out["label_l1"], 0.5)  # row 1: |0.5| + |0.5| = 1, row 2: 0
    assert math.isclose(out["update_mse"], 0.25)
    # argmax ties go to the first class: both rows pick class 0 (row 2's truth ties too)
    assert out["label_acc"] == 1.0
    perfect = update_scores(UpdateInference(label_dist=true, images=images),
                            true_dist=true, true_images=images)
    assert perfect["label_kl"] < 1e-5 and perfect["update_mse"] == 0
    assert math.isclose(perfect["update_ssim"], 1.0)
    base = update_baseline(true_dist=torch.eye(4)[:2], labels=[0, 1, 2, 3])
    assert base["label_acc"] == 0.25 and math.isclose(base["label_kl"], math.log(4))
    with pytest.raises(DataError, match="inferred"):
        update_scores(UpdateInference(label_dist=pred[:1]), true_dist=true)


def test_update_attack_refuses_an_endpoint_before_any_work(tmp_path):
    from invbench.bench.runner import EndpointTarget
    from invbench.config import build_method, parse_method
    from invbench.data import load_protocol

    endpoint = EndpointTarget.__new__(EndpointTarget)
    endpoint.url, endpoint.info = "http://127.0.0.1:1", {"image_shape": [1, 8, 8],
                                                          "num_classes": 5,
                                                          "level": "black-box"}
    with pytest.raises(ConfigError, match="cannot update an endpoint"):
        endpoint.check(load_protocol("digits", seed=0),
                       [build_method("attack", parse_method("update-leaks"))])
