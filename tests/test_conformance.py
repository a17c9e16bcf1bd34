"""Every registered attack, defense and metric obeys the interface (runs for new ones too)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from invbench.access import LEVELS, BlackBox, LabelOnly, make_access
from invbench.attacks.base import UpdateAttack
from invbench.errors import AccessError, ConfigError
from invbench.models.stochastic import is_stochastic, reseed
from invbench.registry import ATTACKS, DATASETS, DEFENSES, METRICS

# Small settings so the suite stays fast; an attack not listed runs with its defaults.
FAST: dict[str, dict] = {
    "mi-face": {"steps": 15},
    "gmi": {"gan_steps": 15, "iterations": 8, "restarts": 2},
    "deepinversion": {"iterations": 8},
    "kedmi": {"gan_steps": 15, "n_critic": 2, "iterations": 8},
    "brep-mi": {"gan_steps": 60, "iterations": 3, "points": 4, "init_tries": 200},
    "c2fmi": {"gan_steps": 15, "embed_arch": "cnn-s", "embed_epochs": 1, "inverse_epochs": 1,
              "popsize": 4, "coarse_steps": 2, "generations": 2},
    "knowledge-alignment": {"epochs": 2},
    "lokt": {"gan_steps": 10, "gan_batch_size": 16, "class_start": 2, "samples_per_class": 8,
             "surrogate_arch": "cnn-s", "surrogate_epochs": 1, "iterations": 4, "restarts": 2,
             "select_views": 2},
    "mirror-bb": {"gan_steps": 15, "pool": 20, "population": 4, "generations": 2},
    "rlb-mi": {"gan_steps": 15, "episodes": 3, "hidden": 16},
    "update-leaks": {"shadow_updates": 40, "attack_epochs": 2, "ae_epochs": 1, "probe_size": 20},
    "plg-mi": {"gan_steps": 10, "gan_batch_size": 16, "n_dis": 2, "top_n": 10, "iterations": 8,
               "restarts": 2},
}


#: attacks that reconstruct classes (``invert``); the others attack a model's updates
INVERSIONS = [n for n in ATTACKS.names() if not issubclass(ATTACKS.get(n), UpdateAttack)]
UPDATES = [n for n in ATTACKS.names() if issubclass(ATTACKS.get(n), UpdateAttack)]


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


@pytest.fixture(scope="module")
def mid_target(digits_protocol):
    """A MID target (beta 0.01, one sampled code per prediction): its predictions are random."""
    from invbench.defenses import MID, TrainConfig

    model = MID(beta=0.01).train(digits_protocol, config=TrainConfig(epochs=3), seed=0)
    assert is_stochastic(model)
    return model


@pytest.mark.parametrize("target_kind", ["plain", "mid"])
@pytest.mark.parametrize("name", INVERSIONS)
def test_attack_contract(name, target_kind, request, digits_protocol):
    cls = ATTACKS.get(name)
    p = digits_protocol
    target = request.getfixturevalue("digits_target" if target_kind == "plain" else "mid_target")

    def run(seed: int):
        atk = cls(**FAST.get(name, {}))
        reseed(target, 0)  # as the runner does before each attack
        acc = make_access(cls.access, target, num_classes=p.num_classes, image_shape=p.image_shape)
        atk.prepare(p.public, access=acc, seed=0)
        reseed(target, 0)
        q0 = acc.queries
        rec = atk.invert(acc, [0, 3], per_label=2, seed=seed)
        assert rec.queries == acc.queries - q0, "a row's queries count invert only"
        assert atk.prepare_queries_ == q0, "prepare's queries are counted apart"
        return rec

    a = run(7)
    assert a.images.shape == (4, *p.image_shape)
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert a.labels.tolist() == [0, 0, 3, 3] and a.scores.shape == (4,)
    if target_kind == "mid":  # a stochastic target: a rerun must not draw other answers
        b = run(7)
        assert torch.equal(a.images, b.images), "same seed, same reconstructions"
        assert torch.equal(a.scores, b.scores), "same seed, same scores"
    weaker = LEVELS[LEVELS.index(cls.access) + 1 :]
    for level in weaker:
        acc = make_access(level, target, num_classes=p.num_classes, image_shape=p.image_shape)
        with pytest.raises(AccessError):
            cls(**FAST.get(name, {})).invert(acc, [0], per_label=1)
        with pytest.raises(AccessError):
            cls(**FAST.get(name, {})).prepare(p.public, access=acc)


#: the registered attacks that need less than white-box access
QUERY_ONLY = [n for n in INVERSIONS if ATTACKS.get(n).access != "white-box"]


@pytest.mark.parametrize("name", QUERY_ONLY)
def test_query_only_attack_runs_behind_the_barrier(name, digits_protocol, digits_target,
                                                   tmp_path):
    """Through the runner's worker: the attack's process never holds the target, and the
    queries the service counted are the ones the attack reports; then over loopback HTTP."""
    import threading

    from invbench.access import BlackBox, LabelOnly, model_fingerprint
    from invbench.serving.channels import HttpChannel
    from invbench.serving.http import make_server, server_url
    from invbench.serving.service import TargetService
    from invbench.serving.worker import run_isolated, tensor_hash

    cls = ATTACKS.get(name)
    p = digits_protocol

    def service() -> TargetService:
        return TargetService(digits_target, level=cls.access, num_classes=p.num_classes,
                             image_shape=p.image_shape, target_key="digits-target")

    served = service()
    result = run_isolated(cls(**FAST.get(name, {})), served, public=p.public, labels=[0, 3],
                          per_label=2, seed=0, cache_root=tmp_path,
                          cache_owner=f"attack-{name}", probe=True)
    assert result.reconstruction.images.shape == (4, *p.image_shape)
    assert served.queries == result.prepare_queries + result.reconstruction.queries
    assert model_fingerprint(digits_target) not in result.probe["modules"]
    weights = {tensor_hash(t) for t in digits_target.state_dict().values() if t.numel() > 1}
    assert not weights & set(result.probe["tensors"])

    server = make_server(service(), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        level_cls = BlackBox if cls.access == "black-box" else LabelOnly
        acc = level_cls(HttpChannel(server_url(server)))
        atk = cls(**FAST.get(name, {}))
        atk.prepare(p.public, access=acc, seed=0)
        rec = atk.invert(acc, [1], per_label=2, seed=0)
        assert rec.images.shape == (2, *p.image_shape)
        assert acc.queries == atk.prepare_queries_ + rec.queries > 0  # all over HTTP
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def digits_updates(digits_protocol, digits_target):
    """Three single-sample updates of the digits target (held-out images of labels 0, 1, 2)."""
    from invbench.training import apply_update

    x, y = digits_protocol.private_test.x, digits_protocol.private_test.y
    idx = [int(torch.nonzero(y == c)[0]) for c in (0, 1, 2)]
    return [apply_update(digits_target, x[i : i + 1], y[i : i + 1], seed=i) for i in idx]


@pytest.mark.parametrize("name", UPDATES)
def test_update_attack_contract(name, digits_protocol, digits_target, digits_updates):
    """Deterministic, one distribution per update, refused without updates or access."""
    cls = ATTACKS.get(name)
    p = digits_protocol

    def access(updates):
        return BlackBox.local(digits_target, num_classes=p.num_classes,
                              image_shape=p.image_shape, updates=updates)

    def run():
        atk = cls(**FAST.get(name, {}))
        acc = access(digits_updates)
        atk.prepare(p.public, access=acc, seed=0)
        q0 = acc.queries
        out = atk.infer_updates(acc, seed=0)
        assert out.queries == acc.queries - q0 > 0 and atk.prepare_queries_ == q0
        return out

    a, b = run(), run()
    assert a.label_dist.shape == (3, p.num_classes)
    assert torch.allclose(a.label_dist.sum(1), torch.ones(3), atol=1e-5)
    assert torch.equal(a.label_dist, b.label_dist), "same seed, same inference"
    if a.images is not None:
        assert a.images.shape == (3, *p.image_shape) and torch.equal(a.images, b.images)
    atk = cls(**FAST.get(name, {}))
    atk.prepare(p.public, access=access([]), seed=0)
    with pytest.raises(ConfigError, match="at least one update"):
        atk.infer_updates(access([]))
    label_only = LabelOnly.local(digits_target, num_classes=p.num_classes,
                                 image_shape=p.image_shape, updates=digits_updates)
    with pytest.raises(AccessError):
        cls(**FAST.get(name, {})).infer_updates(label_only)


@pytest.mark.parametrize("name", UPDATES)
def test_update_attack_runs_behind_the_barrier(name, digits_protocol, digits_target,
                                               digits_updates, tmp_path):
    """An update attack in the runner's worker never holds the target or its versions; over
    loopback HTTP it infers the same."""
    from invbench.access import model_fingerprint
    from invbench.serving.service import TargetService
    from invbench.serving.worker import run_isolated, tensor_hash

    cls = ATTACKS.get(name)
    p = digits_protocol
    served = TargetService(digits_target, level=cls.access, num_classes=p.num_classes,
                           image_shape=p.image_shape, target_key="t", updates=digits_updates)
    result = run_isolated(cls(**FAST.get(name, {})), served, public=p.public, labels=[0],
                          per_label=1, seed=0, cache_root=tmp_path,
                          cache_owner=f"attack-{name}", probe=True)
    assert result.reconstruction.label_dist.shape == (3, p.num_classes)
    assert served.queries == result.prepare_queries + result.reconstruction.queries
    held = set(result.probe["modules"])
    weights = set(result.probe["tensors"])
    for model in (digits_target, *digits_updates):
        assert model_fingerprint(model) not in held
        assert not {tensor_hash(t) for t in model.state_dict().values() if t.numel() > 1} \
            & weights

    import threading

    from invbench.serving.channels import HttpChannel
    from invbench.serving.http import make_server, server_url

    server = make_server(TargetService(digits_target, level=cls.access,
                                       num_classes=p.num_classes, image_shape=p.image_shape,
                                       target_key="t", updates=digits_updates), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        acc = BlackBox(HttpChannel(server_url(server)))
        assert acc.versions == 4
        atk = cls(**FAST.get(name, {}))
        atk.prepare(p.public, access=acc, seed=0)
        over_http = atk.infer_updates(acc, seed=0)
        assert torch.allclose(over_http.label_dist, result.reconstruction.label_dist)
    finally:
        server.shutdown()
        server.server_close()


class _BatchSizes(torch.nn.Module):
    """Wraps a target and records the batch of every forward that builds a graph."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.sizes.append(x.shape[0])
        return self.model(x)


@pytest.mark.parametrize(
    "name", [n for n in ATTACKS.names() if "batch_size" in ATTACKS.get(n).Params.model_fields
             and ATTACKS.get(n).access == "white-box"]
)
def test_batch_size_bounds_what_is_optimised_at_once(name, digits_protocol, digits_target):
    cls = ATTACKS.get(name)
    p = digits_protocol
    target = _BatchSizes(digits_target.eval())
    acc = make_access(cls.access, target, num_classes=p.num_classes, image_shape=p.image_shape)
    labels, per_label = [0, 1, 2, 3], 3  # 12 images

    def run(batch_size):
        atk = cls(**{**FAST.get(name, {}), "batch_size": batch_size})
        if cls.needs_public:
            atk.prepare(p.public, access=acc, seed=0)
        target.sizes.clear()
        rec = atk.invert(acc, labels, per_label=per_label, seed=0)
        return rec, max(target.sizes), atk

    whole, widest, atk = run(None)
    chunked, chunk_widest, _ = run(8)
    assert chunk_widest <= 8 < widest, "no optimisation batch exceeds batch_size"
    assert chunked.images.shape == whole.images.shape
    assert chunked.labels.tolist() == whole.labels.tolist() == [c for c in labels
                                                                 for _ in range(per_label)]
    assert torch.isfinite(chunked.scores).all()
    same, _, _ = run(widest)  # a batch_size that holds everything changes nothing
    assert torch.equal(same.images, whole.images)


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


@pytest.fixture(scope="module")
def toy_context(digits_protocol):
    """An evaluation context of untrained evaluators (contracts, not quality)."""
    from invbench.metrics import EvalContext, Evaluator
    from invbench.metrics.references import split_holdout
    from invbench.metrics.success import calibrate_thresholds
    from invbench.models import make_classifier

    p = digits_protocol
    evs = []
    for i, (arch, name) in enumerate((("resnet", "resnet"), ("mlp", "mlp"), ("dense", "robust"))):
        torch.manual_seed(i)
        model = make_classifier(arch, image_shape=p.image_shape, num_classes=p.num_classes)
        evs.append(Evaluator(model.eval(), arch=arch, num_classes=p.num_classes,
                             image_shape=p.image_shape, accuracy=0.0, name=name))
    ctx = EvalContext(protocol=p, standard=evs[0], robust=evs[2], extractor=evs[1],
                      ensemble=tuple(evs))
    calib, _ = split_holdout(p, seed=0)
    ctx.thresholds = calibrate_thresholds(p.private_test.x[calib], p.private_test.y[calib], ctx,
                                          num_classes=p.num_classes, quantile=0.95)
    return ctx


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_contract(name, digits_protocol, toy_context):
    from fnmatch import fnmatchcase

    from invbench.types import Reconstruction

    cls = METRICS.get(name)
    doc = _doc(cls)
    assert any(str(y) in doc for y in range(1927, 2031)), "docstring names the paper's year"
    assert cls.keys, "declares the score keys it returns"
    p = digits_protocol
    n = 70  # above the robust evaluator's 64 features, so FID is defined
    rec = Reconstruction(p.private_test.x[:n], p.private_test.y[:n], torch.zeros(n))
    out = cls().compute(rec, toy_context)
    scores = {k: v for k, v in out.items() if not isinstance(v, torch.Tensor)}
    per_image = {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}
    assert scores, "returns at least one score"
    for k, v in scores.items():
        assert any(fnmatchcase(k, pat) for pat in cls.keys), f"'{k}' is declared in keys"
        assert v is None or (isinstance(v, float) and math.isfinite(v)), (k, v)
    for k, v in per_image.items():
        assert k.startswith("img_") and v.shape == (n,), k
    for pat in cls.keys:
        assert any(fnmatchcase(k, pat) for k in scores), f"declared '{pat}' is returned"


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_loader_is_keyword_only(name):
    sig = inspect.signature(DATASETS.get(name))
    for pname in ("data_dir", "resolution"):
        assert sig.parameters[pname].kind is inspect.Parameter.KEYWORD_ONLY
