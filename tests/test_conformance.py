"""Every registered attack, defense and metric obeys the interface (runs for new ones too)."""

from __future__ import annotations

import inspect

import pytest
import torch

from invbench.access import LEVELS, make_access
from invbench.errors import AccessError
from invbench.registry import ATTACKS, DATASETS, DEFENSES, METRICS

# Small settings so the suite stays fast; an attack not listed runs with its defaults.
FAST: dict[str, dict] = {
    "mi-face": {"steps": 15},
    "gmi": {"gan_steps": 15, "iterations": 8, "restarts": 2},
}


def _doc(obj) -> str:
    return inspect.getdoc(obj) or ""


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_declares_access_paper_and_threat_model(name):
    cls = ATTACKS.get(name)
    assert cls.access in LEVELS
    cls()  # builds with its defaults
    doc = _doc(cls)
    assert any(str(y) in doc for y in range(2013, 2031)), "docstring names the paper's year"
    assert cls.access in doc.lower() or cls.access.replace("-", " ") in doc.lower()


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_contract(name, digits_protocol, digits_target):
    cls = ATTACKS.get(name)
    p = digits_protocol

    def run(seed: int):
        atk = cls(**FAST.get(name, {}))
        if atk.needs_public:
            atk.prepare(p.public, image_shape=p.image_shape, seed=0)
        acc = make_access(
            cls.access, digits_target, num_classes=p.num_classes, image_shape=p.image_shape
        )
        return atk.invert(acc, [0, 3], per_label=2, seed=seed)

    a, b = run(7), run(7)
    assert a.images.shape == (4, *p.image_shape)
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert a.labels.tolist() == [0, 0, 3, 3] and a.scores.shape == (4,)
    assert torch.equal(a.images, b.images), "same seed, same reconstructions"
    weaker = LEVELS[LEVELS.index(cls.access) + 1 :]
    for level in weaker:
        acc = make_access(
            level, digits_target, num_classes=p.num_classes, image_shape=p.image_shape
        )
        with pytest.raises(AccessError):
            cls(**FAST.get(name, {})).invert(acc, [0], per_label=1)


@pytest.mark.parametrize("name", DEFENSES.names())
def test_defense_contract(name):
    cls = DEFENSES.get(name)
    d = cls()
    assert _doc(cls), "docstring"
    model = d.build(arch="auto", image_shape=(1, 8, 8), num_classes=5)
    model.eval()
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 5)
    loss = d.loss(model.train(), torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_contract(name, digits_protocol):
    from invbench.attacks.base import Reconstruction
    from invbench.metrics import Evaluator
    from invbench.models import make_classifier

    cls = METRICS.get(name)
    assert _doc(cls)
    torch.manual_seed(0)
    p = digits_protocol
    model = make_classifier("mlp", image_shape=p.image_shape, num_classes=p.num_classes).eval()
    ev = Evaluator(
        model, arch="mlp", num_classes=p.num_classes, image_shape=p.image_shape, accuracy=0.0
    )
    rec = Reconstruction(p.private_test.x[:6], p.private_test.y[:6], torch.zeros(6))
    out = cls().compute(rec, p, ev)
    assert out and all(isinstance(v, float) and v == v for v in out.values())


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_loader_is_keyword_only(name):
    sig = inspect.signature(DATASETS.get(name))
    for pname in ("data_dir", "resolution"):
        assert sig.parameters[pname].kind is inspect.Parameter.KEYWORD_ONLY
