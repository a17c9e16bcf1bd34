"""Knowledge Alignment (Yang et al. 2019) on digits: a decoder from prediction vectors."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import judged_success

from invbench.access import BlackBox, LabelOnly
from invbench.attacks.knowledge_alignment import KnowledgeAlignment, align_vectors
from invbench.cache import Cache
from invbench.errors import AccessError, QueryBudgetExceeded

SHAPE = (1, 8, 8)
K = 5


def _access(model, **kw) -> BlackBox:
    return BlackBox.local(model, num_classes=K, image_shape=SHAPE, **kw)


def test_align_vectors_is_the_truncated_shifted_log():
    p = torch.tensor([[0.7, 0.2, 0.1, 0.0]])
    got = align_vectors(p, truncation=2, c=1.0)
    logs = torch.log(torch.tensor([0.7, 0.2])) + 1.0  # [0.643, -0.609]: shifted up by 0.609
    expected = torch.tensor([[logs[0] - logs[1], 0.0, 0.0, 0.0]])
    assert torch.allclose(got, expected, atol=1e-6)
    full = align_vectors(p, truncation=4, c=50.0)
    assert full[0, 3] == 0.0 and (full[0, :3] > 0).all()  # log 0 clamps to -1000, shifted


def test_class_vectors_start_one_hot_and_spread():
    atk = KnowledgeAlignment(spread=0.5)
    labels = torch.tensor([2, 2, 2, 4])
    v = atk.class_vectors(labels, K, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(v.sum(1), torch.ones(4))
    assert v[0, 2] == 1.0 and v[3, 4] == 1.0  # first of each run: the confident answer
    assert v[0, 2] > v[1, 2] > v[2, 2] >= 0.5  # the last of a run moves `spread` of the mass


@pytest.fixture(scope="module")
def prepared(digits_protocol, digits_target, tmp_path_factory):
    cache = Cache(tmp_path_factory.mktemp("ka")).view("attack-knowledge-alignment")
    access = _access(digits_target)
    atk = KnowledgeAlignment(epochs=30)
    atk.prepare(digits_protocol.public, access=access, cache=cache, seed=0)
    return atk, access, cache


def test_beats_chance_under_success_within_its_query_budget(
    prepared, digits_protocol, digits_target, digits_judges, noise_success
):
    atk, _, _ = prepared
    n_public = len(digits_protocol.public)
    assert atk.prepare_queries_ == n_public  # one query per public image
    budget = n_public + 50
    # a fresh access whose budget covers the cached decoder's queries and one per image
    access = _access(digits_target, budget=budget)
    access.charge(n_public)
    rec = atk.invert(access, [0, 1, 2, 3, 4], per_label=10, seed=0)
    assert rec.queries == 50 and access.queries == budget
    success = judged_success(rec, digits_judges)
    assert success >= noise_success + 0.15, (success, noise_success)
    with pytest.raises(QueryBudgetExceeded):
        atk.invert(access, [0], per_label=1, seed=0)


def test_decoder_is_cached_per_target_and_charged_on_a_hit(prepared, digits_protocol,
                                                           digits_target):
    atk, _, cache = prepared
    again = KnowledgeAlignment(epochs=30)
    access = _access(digits_target)
    again.prepare(digits_protocol.public, access=access, cache=cache, seed=0)
    assert again.prepare_queries_ == access.queries == len(digits_protocol.public)
    for a, b in zip(atk.decoder_.parameters(), again.decoder_.parameters(), strict=True):
        assert torch.equal(a, b)
    # another target (another identity) gets its own decoder
    other = _access(digits_target, target_key="another-target")
    fresh = KnowledgeAlignment(epochs=1)
    fresh.prepare(digits_protocol.public, access=other, cache=cache, seed=0)
    assert len(list(cache.root.rglob("*.safetensors"))) == 2
    rec = fresh.invert(other, [0], per_label=2, seed=0)
    assert math.isfinite(float(rec.scores.sum()))


def test_refuses_label_only_access(digits_target, digits_protocol):
    access = LabelOnly.local(digits_target, num_classes=K, image_shape=SHAPE)
    with pytest.raises(AccessError, match="needs black-box access"):
        KnowledgeAlignment(epochs=1).prepare(digits_protocol.public, access=access)
    assert access.queries == 0
