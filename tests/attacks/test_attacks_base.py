"""The attack base: prepare gets the access object and its queries are counted apart."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch
from torch import nn

from invbench.access import WhiteBox, make_access
from invbench.attacks.base import Attack
from invbench.cache import Cache
from invbench.errors import QueryBudgetExceeded
from invbench.types import Reconstruction


class _Distils(Attack):
    """A toy attack (2024) whose prior is fitted to the target's outputs on public data.

    Threat model: white-box.
    """

    access: ClassVar[str] = "white-box"
    needs_public: ClassVar[bool] = True

    def _prepare(self, public, *, access, cache, seed, quiet):
        self.prior_ = nn.Linear(access.num_classes, 1)
        x = public.x[:10].to(access.device)

        def create():
            with torch.no_grad():
                self.prior_.weight.copy_(access.predict_proba(x).mean(0, keepdim=True))
            return {"fitted": True}

        self.meta_ = self.cached_prior(
            cache, access=access, kind="prior", parts={"attack": self.name},
            modules={"prior": self.prior_}, create=create, uses_target=True,
        )

    def _invert(self, access, labels, *, generator, quiet):
        x = torch.rand(labels.numel(), *access.image_shape, generator=generator,
                       device=access.device)
        return Reconstruction(images=x, labels=labels, scores=access.predict_proba(x).amax(1))


def _access(model, protocol, **kw):
    return make_access("white-box", model, num_classes=protocol.num_classes,
                       image_shape=protocol.image_shape, **kw)


def test_prepare_queries_are_counted_apart_and_the_same_warm(digits_protocol, digits_target,
                                                             tmp_path):
    p = digits_protocol
    view = Cache(tmp_path).view("attack-toy")
    cold = _access(digits_target, p)
    atk = _Distils()
    atk.prepare(p.public, access=cold, cache=view, seed=0)
    rec = atk.invert(cold, [0, 1], per_label=2)
    assert atk.prepare_queries_ == 10 and rec.queries == 4 and cold.queries == 14
    assert atk.meta_["prepare_queries"] == 10

    warm = _access(digits_target, p)
    again = _Distils()
    again.prepare(p.public, access=warm, cache=view, seed=0)
    assert again.prepare_queries_ == 10 and warm.queries == 10  # charged, not re-queried
    assert torch.equal(again.prior_.weight, atk.prior_.weight)

    # the budget covers preparation and inversion, warm or cold
    tight = _access(digits_target, p, budget=12)
    limited = _Distils()
    limited.prepare(p.public, access=tight, cache=view, seed=0)
    with pytest.raises(QueryBudgetExceeded):
        limited.invert(tight, [0, 1, 2], per_label=1)


def test_a_prior_that_queried_the_target_is_per_target(digits_protocol, digits_target, tmp_path):
    p = digits_protocol
    view = Cache(tmp_path).view("attack-toy")
    _Distils().prepare(p.public, access=_access(digits_target, p), cache=view, seed=0)
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, p.num_classes))
    atk = _Distils()
    atk.prepare(p.public, access=_access(other, p), cache=view, seed=0)
    assert atk.prepare_queries_ == 10, "another target: the prior is learned again"
    # the runner names targets by their cache key; the weights' hash is the fallback
    keyed = _access(digits_target, p, target_key="abc")
    assert keyed.fingerprint() == "abc"
    a = WhiteBox(digits_target, num_classes=p.num_classes, image_shape=p.image_shape)
    b = WhiteBox(digits_target, num_classes=p.num_classes, image_shape=p.image_shape)
    assert a.fingerprint() == b.fingerprint() != _access(other, p).fingerprint()
