"""Shared fixtures: small digits protocols and quickly trained targets (CPU, seeded)."""

from __future__ import annotations

import io
import sqlite3
import time
from contextlib import redirect_stderr, redirect_stdout

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


#: the small digits benchmark of the CLI and report tests: contracts and orderings, not quality
FAST_YAML = (
    "evaluator: {epochs: 8, robust: {epochs: 4}}\n"
    "references: {per_class: 20, adversarial: {steps: 20}}\n"
)
FAST = [
    "--epochs", "6", "--per-label", "2",
    "--attack", "mi-face:steps=60", "--attack", "gmi:gan_steps=60,iterations=40,restarts=2",
    "--defense", "none", "--defense", "mid:beta=0.01",
]


@pytest.fixture(scope="session")
def digits_bench(tmp_path_factory):
    """`invbench run --json` of a 4-cell digits benchmark (none + mid x mi-face + gmi, the
    settings above), once per session (about 40 s on one core).

    Returns ``(out, exit code, stdout, seconds, snapshot)``: ``snapshot`` is a copy of the
    store as the run left it, for tests that need exactly these 4 cells while others add
    cells to ``out``.
    """
    from invbench.cli import main

    out = tmp_path_factory.mktemp("runs")
    (out / "fast.yaml").write_text(FAST_YAML)
    buf = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stdout(buf), redirect_stderr(io.StringIO()):
        code = main(["run", "--json", "--config", str(out / "fast.yaml"), "--out", str(out),
                     *FAST])
    seconds = time.perf_counter() - t0
    snapshot = tmp_path_factory.mktemp("snapshot") / "invbench.sqlite"
    src, dst = sqlite3.connect(out / "invbench.sqlite"), sqlite3.connect(snapshot)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return out, code, buf.getvalue(), seconds, snapshot
