"""TL-DMI (Ho et al., CVPR 2024): public pretraining, frozen blocks bit-identical, caching."""

from __future__ import annotations

import pytest
import torch

import invbench.defenses.tl_dmi as tl_dmi_module
from invbench.cache import Cache
from invbench.defenses import TLDMI, TrainConfig
from invbench.defenses.base import TrainingData
from invbench.errors import ConfigError
from invbench.registry import DEFENSES
from invbench.training import evaluate_accuracy

CFG = TrainConfig(epochs=4)


def test_registered() -> None:
    assert DEFENSES.get("tl-dmi") is TLDMI
    assert TLDMI().params.frozen == 3


def test_frozen_blocks_and_their_batchnorm_statistics_are_bit_identical(digits_protocol) -> None:
    defense = TLDMI(frozen=2)
    data = TrainingData.from_protocol(digits_protocol)
    pre = defense.pretrain(data, config=CFG, seed=0)
    public_acc = evaluate_accuracy(pre, data.public.x,
                                   torch.unique(data.public.y, return_inverse=True)[1])
    assert public_acc > 0.8  # it learned the public classes
    model = defense.train(digits_protocol, config=CFG, seed=0)
    blocks, pre_blocks = model.blocks(), pre.blocks()
    for i, (block, pblock) in enumerate(zip(blocks, pre_blocks, strict=True)):
        same = all(torch.equal(a, b) for a, b in zip(block.state_dict().values(),
                                                       pblock.state_dict().values(),
                                                       strict=True))
        if i < 2:  # weights *and* running mean/var/num_batches_tracked untouched
            assert same, f"frozen block {i} changed"
            assert not any(p.requires_grad for p in block.parameters())
        else:
            assert not same, f"block {i} was not fine-tuned"
    acc = evaluate_accuracy(model, digits_protocol.private_test.x, digits_protocol.private_test.y)
    assert acc > 0.8, acc


def test_pretraining_is_cached_and_shared_across_frozen(digits_protocol, tmp_path,
                                                        monkeypatch) -> None:
    calls: list[int] = []
    real = tl_dmi_module.TLDMI.pretrain

    def counting(self, data, **kw):
        out = real(self, data, **kw)
        calls.append(1)
        return out

    cache = Cache(tmp_path)
    trained: list[int] = []
    import invbench.training as training

    real_train = training.train_classifier

    def spy_train(*args, desc="", **kw):
        trained.append(desc)
        return real_train(*args, desc=desc, **kw)

    monkeypatch.setattr(training, "train_classifier", spy_train)
    monkeypatch.setattr(tl_dmi_module.TLDMI, "pretrain", counting)
    TLDMI(frozen=1).train(digits_protocol, config=TrainConfig(epochs=1), seed=0, cache=cache)
    TLDMI(frozen=3).train(digits_protocol, config=TrainConfig(epochs=1), seed=0, cache=cache)
    assert len(calls) == 2
    assert trained.count("tl-dmi: pretrain on public") == 1  # the second run loaded it


def test_freezing_every_block_trains_only_the_head(digits_protocol) -> None:
    n = len(TLDMI().build(arch="auto", image_shape=(1, 8, 8), num_classes=5).blocks())
    model = TLDMI(frozen=n).train(digits_protocol, config=TrainConfig(epochs=2), seed=0)
    assert not any(p.requires_grad for p in model.body.parameters())
    with pytest.raises(ConfigError, match="'frozen' parameter of defense 'tl-dmi' must be <="):
        TLDMI(frozen=n + 1).train(digits_protocol, config=TrainConfig(epochs=1), seed=0)
