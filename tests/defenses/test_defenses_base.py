"""The defense interface: what fit may see, and training through the cache."""

from __future__ import annotations

import pytest
import torch

from invbench.cache import Cache
from invbench.defenses import NoDefense, TrainConfig
from invbench.defenses.base import Defense, TrainingData
from invbench.errors import ConfigError

CFG = TrainConfig(epochs=1)


def test_fit_sees_private_train_and_public_never_private_test(digits_protocol) -> None:
    seen: list[TrainingData] = []

    class Spy(Defense):
        name = "spy"

        def fit(self, model, data, **kwargs):
            seen.append(data)
            return super().fit(model, data, **kwargs)

    Spy().train(digits_protocol, config=CFG, seed=0)
    (data,) = seen
    assert not hasattr(data, "private_test")
    assert data.private_train is digits_protocol.private_train
    assert data.public is digits_protocol.public
    assert data.num_classes == digits_protocol.num_classes
    assert data.image_shape == digits_protocol.image_shape
    model = NoDefense().build(arch="auto", image_shape=data.image_shape, num_classes=5)
    with pytest.raises(TypeError, match="never private test"):
        NoDefense().fit(model, digits_protocol, config=CFG)  # a whole protocol is refused


def test_validation_split_is_seeded_and_disjoint(digits_protocol) -> None:
    data = TrainingData.from_protocol(digits_protocol)
    n = len(data.private_train)
    train, val = data.validation_split(0.2, seed=3)
    again, _ = data.validation_split(0.2, seed=3)
    other, _ = data.validation_split(0.2, seed=4)
    assert len(val) == round(0.2 * n) and len(train) + len(val) == n
    assert torch.equal(train.x, again.x) and not torch.equal(train.x, other.x)
    # together the two parts are exactly the training images (as a multiset), with labels
    both = torch.cat([torch.cat([train.x, val.x]).flatten(1),
                      torch.cat([train.y, val.y]).view(-1, 1).float()], 1)
    orig = torch.cat([data.private_train.x.flatten(1),
                      data.private_train.y.view(-1, 1).float()], 1)
    for got, want in zip(torch.unique(both, dim=0, return_counts=True),
                         torch.unique(orig, dim=0, return_counts=True), strict=True):
        assert torch.equal(got, want)
    for bad in (0.0, 1.0, 1e-9):
        with pytest.raises(ConfigError, match="validation fraction"):
            data.validation_split(bad, seed=0)


def test_train_caches_the_target_and_loads_it_again(digits_protocol, tmp_path) -> None:
    cache = Cache(tmp_path)
    first = NoDefense()
    a = first.train(digits_protocol, config=CFG, seed=0, cache=cache)
    assert first.train_hit_ is False
    second = NoDefense()
    b = second.train(digits_protocol, config=CFG, seed=0, cache=cache)
    assert second.train_hit_ is True
    for (name, t), (_, u) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(t, u), name
    third = NoDefense()
    third.train(digits_protocol, config=CFG, seed=1, cache=cache)
    assert third.train_hit_ is False  # another seed, another target
    assert cache.key(first.cache_parts(digits_protocol, CFG, 0)) != cache.key(
        first.cache_parts(digits_protocol, CFG, 1)
    )
