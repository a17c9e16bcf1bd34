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
