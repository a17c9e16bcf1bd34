"""Output processing: changes what a query returns, and nothing else."""

from __future__ import annotations

import pytest
import torch

from invbench.access import AccessError, make_access
from invbench.config import make_spec
from invbench.defenses import Noise, Round, TopK
from invbench.errors import ConfigError
from invbench.registry import OUTPUTS

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def model(digits_target):
    return digits_target.eval()  # trained: confident answers, no near-ties


def test_registered() -> None:
    assert OUTPUTS.names() == ["noise", "round", "top-k"]
    assert TopK(k=2).describe() == "top-k(k=2)"


def test_each_processing_is_what_it_says() -> None:
    p = torch.tensor([[0.1, 0.5, 0.15, 0.25], [0.7, 0.12, 0.1, 0.08]])
    torch.testing.assert_close(TopK(k=2)(p), torch.tensor([[0.0, 0.5, 0.0, 0.25],
                                                           [0.7, 0.12, 0.0, 0.0]]))
    torch.testing.assert_close(Round(decimals=1)(torch.tensor([[0.14, 0.86]])),
                               torch.tensor([[0.1, 0.9]]))
    a = Noise(std=0.05, seed=3)(p)
    b = Noise(std=0.05, seed=3)(p)
    c = Noise(std=0.05, seed=4)(p)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert bool((a >= 0).all())
    torch.testing.assert_close(a.sum(1), torch.ones(2))


def test_query_answers_change_and_nothing_else(model, digits_protocol) -> None:
    x = digits_protocol.private_test.x[::10][:32]
    raw = make_access("black-box", model, num_classes=5, image_shape=SHAPE)
    top1 = make_access("black-box", model, num_classes=5, image_shape=SHAPE,
                       output_transform=TopK(k=1))
    p_raw, p_top = raw.predict_proba(x), top1.predict_proba(x)
    assert bool(((p_top > 0).sum(1) == 1).all())  # one number per answer
    assert torch.equal(p_top.max(1).values, p_raw.max(1).values)
    assert torch.equal(p_top.argmax(1), p_raw.argmax(1))
    assert top1.queries == raw.queries == x.shape[0]
    labels = make_access("label-only", model, num_classes=5, image_shape=SHAPE,
                         output_transform=Round(decimals=3))
    assert torch.equal(labels.predict_label(x), p_raw.argmax(1))
    noisy = make_access("label-only", model, num_classes=5, image_shape=SHAPE,
                        output_transform=Noise(std=0.5, seed=0))
    assert not torch.equal(noisy.predict_label(x), p_raw.argmax(1))  # heavy noise flips some
    with torch.inference_mode():  # the model itself is untouched
        torch.testing.assert_close(torch.softmax(model(x), 1), p_raw)


def test_processing_is_part_of_the_targets_cache_identity(model) -> None:
    def fp(transform):
        return make_access("black-box", model, num_classes=5, image_shape=SHAPE,
                           target_key="t", output_transform=transform).fingerprint()

    assert len({fp(None), fp(TopK(k=1)), fp(TopK(k=2)), fp(Round(decimals=2))}) == 4
    assert fp(TopK(k=1)) == fp(TopK(k=1))


def test_white_box_is_refused_with_the_reason(model, tmp_path) -> None:
    with pytest.raises(AccessError, match="protects only black-box and label-only"):
        make_access("white-box", model, num_classes=5, image_shape=SHAPE,
                    output_transform=TopK(k=1))
    with pytest.raises(ConfigError, match="attack 'gmi' needs white-box access"):
        make_spec(attacks=["gmi"], output="top-k:k=1", out=tmp_path / "o")
    with pytest.raises(ConfigError, match="unknown output 'blur'"):
        make_spec(attacks=["gmi"], output="blur", out=tmp_path / "o")
    assert not (tmp_path / "o").exists()
