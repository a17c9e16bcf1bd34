"""LOKT (Nguyen et al. 2023) on digits: T-ACGAN and surrogate from the target's labels only."""

from __future__ import annotations

import pytest
from conftest import judged_success

from invbench.access import BlackBox, LabelOnly
from invbench.attacks.lokt import LOKT
from invbench.errors import AccessError

SHAPE = (1, 8, 8)
K = 5
SETUP = {"gan_steps": 800, "class_start": 100, "samples_per_class": 200,
         "surrogate_arch": "cnn-s", "surrogate_epochs": 10, "iterations": 100}


def _access(model, **kw) -> LabelOnly:
    return LabelOnly.local(model, num_classes=K, image_shape=SHAPE, **kw)


@pytest.fixture(scope="module")
def prepared(digits_protocol, digits_target):
    atk = LOKT(**SETUP)
    access = _access(digits_target)
    atk.prepare(digits_protocol.public, access=access, seed=0)
    return atk, access


def test_prepare_queries_only_labels_and_the_generator_learns_the_classes(prepared):
    atk, access = prepared
    steps, batch = SETUP["gan_steps"], atk.params.gan_batch_size
    labelled = (steps - SETUP["class_start"]) * batch + K * SETUP["samples_per_class"]
    assert atk.prepare_queries_ == access.queries == labelled
    # G(z, y) is labelled y by the target far above chance (1/5): measured 0.50
    assert atk.prior_meta_["generator_agreement"] > 0.35


def test_beats_chance_without_querying_in_invert(prepared, digits_target, digits_judges,
                                                 noise_success):
    atk, _ = prepared
    access = _access(digits_target, budget=1)
    rec = atk.invert(access, [0, 1, 2, 3, 4], per_label=10, seed=0)
    assert rec.queries == 0  # the search attacks the surrogate
    success = judged_success(rec, digits_judges)
    assert success >= noise_success + 0.05, (success, noise_success)


def test_more_than_labels_is_fine_and_no_access_is_refused(digits_target, digits_protocol):
    with pytest.raises(AccessError):
        LOKT(gan_steps=2).invert(object(), [0])  # type: ignore[arg-type]
    bb = BlackBox.local(digits_target, num_classes=K, image_shape=SHAPE)
    atk = LOKT(gan_steps=2, class_start=0, samples_per_class=2, surrogate_arch="cnn-s",
               surrogate_epochs=1)
    atk.prepare(digits_protocol.public, access=bb, seed=0)  # more than labels is fine
    assert atk.surrogate_ is not None
