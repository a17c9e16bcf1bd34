"""Shared fixtures: small digits protocols and quickly trained targets (CPU, seeded)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_protocol():
    from invbench.data import load_protocol

    return load_protocol("digits", seed=0)


@pytest.fixture(scope="session")
def digits_target(digits_protocol):
    """A plain cnn-s target on digits classes 0-4 (a few epochs: enough for >90% accuracy)."""
    from invbench.defenses import NoDefense, TrainConfig

    return NoDefense().train(digits_protocol, config=TrainConfig(epochs=8), seed=0)


@pytest.fixture(scope="session")
def digits_judges(digits_protocol):
    """The full evaluation context on digits (small epochs): judge attacks under ``success``.

    Attack tests use it with :func:`judged_success` to show an attack beats chance under the
    headline metric: uniform noise scores ``success`` 0 here (see ``noise_success``).
    """
    from invbench.config import EvaluatorSpec, RobustSpec
    from invbench.metrics.judges import build_judges

    spec = EvaluatorSpec(epochs=12, robust=RobustSpec(epochs=6))
    ctx, _ = build_judges(digits_protocol, spec, seed=0)
    return ctx


def judged_success(rec, ctx) -> float:
    """The headline ``success`` of reconstructions ``rec`` under evaluation context ``ctx``."""
    from invbench.metrics.base import judge

    return float(judge(rec, ctx, metrics=["success"]).scores["success"])


@pytest.fixture(scope="session")
def noise_success(digits_protocol, digits_judges):
    """``success`` of uniform noise on digits (the chance level attacks must beat)."""
    from invbench.metrics.references import noise_reference

    rec = noise_reference(digits_protocol, [0, 1, 2, 3, 4], per_class=20, seed=0)
    return judged_success(rec, digits_judges)


@pytest.fixture(scope="session")
def wgan_prior_cache(tmp_path_factory):
    """One cache view for the public WGAN-GP prior that the latent-space attacks share.

    Attack tests prepare with ``gan_steps=300`` (and the other prior defaults) and this
    cache, so the prior is trained once per test session, as a run shares it.
    """
    from invbench.cache import Cache

    return Cache(tmp_path_factory.mktemp("wgan-prior")).view("prior-wgan-gp")
