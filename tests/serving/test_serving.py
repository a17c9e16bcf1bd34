"""The barrier behind black-box and label-only access: codec, service, worker, HTTP."""

from __future__ import annotations

import threading

import pytest
import torch
from _probe_attacks import PeekAtTarget, RandomSearch

from invbench.access import BlackBox, LabelOnly, model_fingerprint
from invbench.cache import Cache
from invbench.defenses.output import Noise, TopK
from invbench.errors import AccessError, ConfigError, DataError, QueryBudgetExceeded
from invbench.serving.channels import HttpChannel, LocalChannel, check_loopback_url
from invbench.serving.codec import decode, encode
from invbench.serving.http import make_server, server_url
from invbench.serving.service import TargetService, query_seeds
from invbench.serving.worker import run_isolated, tensor_hash

SHAPE = (1, 8, 8)


def _service(model, level="black-box", **kw) -> TargetService:
    return TargetService(model, level=level, num_classes=5, image_shape=SHAPE,
                         target_key="t", **kw)


def test_codec_round_trip_and_malformed_messages():
    x = torch.rand(3, *SHAPE)
    tensors, meta = decode(encode({"images": x}, {"op": "query", "n": 3}))
    assert torch.equal(tensors["images"], x) and meta == {"op": "query", "n": 3}
    for bad in (b"", b"\x10" + b"\x00" * 7, b"\x02\x00\x00\x00\x00\x00\x00\x00{]"):
        with pytest.raises(DataError, match="message"):
            decode(bad)


def test_service_answers_counts_and_enforces_the_budget(digits_target, digits_protocol):
    x = digits_protocol.private_test.x[:6]
    service = _service(digits_target, budget=10)
    access = BlackBox(LocalChannel(service))
    assert (access.num_classes, access.image_shape, access.budget) == (5, SHAPE, 10)
    probs = access.predict_proba(x)
    with torch.no_grad():
        assert torch.allclose(probs, torch.softmax(digits_target(x), 1), atol=1e-6)
    with pytest.raises(QueryBudgetExceeded, match=r"budget of 10 exceeded \(6 used, 6 more"):
        access.predict_proba(x)
    assert service.queries == access.queries == 6  # the refused batch cost nothing
    access.charge(4)
    assert service.queries == 10
    with pytest.raises(DataError, match="NaN"):
        BlackBox(LocalChannel(_service(digits_target))).predict_proba(x * float("nan"))


def test_label_only_answers_the_top1_of_the_processed_probabilities(digits_target,
                                                                   digits_protocol):
    x = digits_protocol.private_test.x[:20]
    labels = LabelOnly(LocalChannel(_service(digits_target, level="label-only"))).predict_label(x)
    with torch.no_grad():
        assert torch.equal(labels, digits_target(x).argmax(1))
    probs = BlackBox(LocalChannel(_service(digits_target, output=TopK(k=1)))).predict_proba(x)
    assert ((probs > 0).sum(1) == 1).all()
    with pytest.raises(AccessError, match="served with label-only access, not black-box"):
        BlackBox(LocalChannel(_service(digits_target, level="label-only")))
    # label-only access to a probability endpoint reads the top-1 of its answers
    reader = LabelOnly(LocalChannel(_service(digits_target)))
    assert torch.equal(reader.predict_label(x), labels) and reader.queries == 20
    with pytest.raises(AccessError, match="white-box attacker needs the module"):
        _service(digits_target, level="white-box")


@pytest.fixture(scope="module")
def mid_target(digits_protocol):
    from invbench.defenses import MID, TrainConfig

    return MID(beta=0.01, samples=2).train(digits_protocol, config=TrainConfig(epochs=2), seed=0)


@pytest.mark.parametrize("kind", ["mid", "noise"])
def test_random_answers_do_not_depend_on_batching(kind, mid_target, digits_target,
                                                  digits_protocol):
    x = digits_protocol.private_test.x[:12]
    if kind == "mid":
        service = _service(mid_target)
    else:
        service = _service(digits_target, output=Noise(std=0.2, seed=3))
    access = BlackBox(LocalChannel(service))
    whole = access.predict_proba(x)
    one_by_one = torch.cat([access.predict_proba(x[i : i + 1]) for i in range(12)])
    shuffled = access.predict_proba(x.flip(0)).flip(0)
    assert torch.allclose(whole, one_by_one, atol=1e-6)
    assert torch.allclose(whole, shuffled, atol=1e-6)
    # ...and they are random: two different images' noise differs from a plain answer
    plain = BlackBox(LocalChannel(_service(mid_target if kind == "mid" else digits_target,
                                           seed=99, output=None if kind == "mid" else
                                           Noise(std=0.2, seed=4)))).predict_proba(x)
    assert not torch.allclose(whole, plain, atol=1e-4)
    assert query_seeds(x[:2], 0).unique().numel() == 2


@pytest.fixture(scope="module")
def cached_target(digits_protocol, tmp_path_factory):
    """A digits target trained into a cache, as the runner leaves it."""
    from invbench.defenses import NoDefense, TrainConfig

    root = tmp_path_factory.mktemp("cache")
    defense = NoDefense()
    model = defense.train(digits_protocol, config=TrainConfig(epochs=2), seed=0,
                          cache=Cache(root))
    return model, root


def test_a_black_box_attack_runs_in_a_process_that_never_holds_the_target(
    cached_target, digits_protocol
):
    model, root = cached_target
    service = _service(model)
    result = run_isolated(RandomSearch(tries=4), service, public=digits_protocol.public,
                          labels=[0, 1, 2], per_label=2, seed=0, cache_root=root,
                          cache_owner="attack-random-search", probe=True)
    rec = result.reconstruction
    assert rec.images.shape == (6, *SHAPE) and rec.queries == 24 == service.queries
    target_tensors = {tensor_hash(t) for t in model.state_dict().values() if t.numel() > 1}
    assert model_fingerprint(model) not in result.probe["modules"]
    assert not target_tensors & set(result.probe["tensors"])
    # the probe does see a target when one is there: an attack that loads it from the cache
    peek = run_isolated(PeekAtTarget(), _service(model), public=digits_protocol.public,
                        labels=[0], per_label=1, seed=0, cache_root=root,
                        cache_owner="attack-peek", probe=True)
    assert model_fingerprint(model) in peek.probe["modules"]
    assert target_tensors <= set(peek.probe["tensors"])


def test_worker_errors_come_back_as_one_line(cached_target, digits_protocol):
    model, _ = cached_target
    with pytest.raises(QueryBudgetExceeded, match=r"budget of 5 exceeded \(0 used, 8 more"):
        run_isolated(RandomSearch(tries=8), _service(model, budget=5), public=None,
                     labels=[0], per_label=1, seed=0)
    with pytest.raises(ConfigError, match="needs black-box access"):
        run_isolated(RandomSearch(), _service(model, level="label-only"), public=None,
                     labels=[0], per_label=1, seed=0)


def test_http_endpoint_on_loopback(digits_target, digits_protocol):
    service = _service(digits_target, budget=100)
    server = make_server(service, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        access = BlackBox(HttpChannel(server_url(server)))
        x = digits_protocol.private_test.x[:7]
        with torch.no_grad():
            expected = torch.softmax(digits_target(x), 1)
        assert torch.allclose(access.predict_proba(x), expected, atol=1e-6)
        assert access.queries == service.queries == 7
        with pytest.raises(QueryBudgetExceeded):
            access.predict_proba(digits_protocol.private_test.x[:94])
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(AccessError, match="unreachable"):
        BlackBox(HttpChannel(server_url(server)))


def test_only_loopback_urls_and_hosts():
    assert check_loopback_url("http://127.0.0.1:8765/")
    assert check_loopback_url("http://[::1]:1/")
    for url in ("http://example.com/", "https://127.0.0.1/", "http://10.0.0.1:80/", "ftp://x"):
        with pytest.raises(ConfigError):
            check_loopback_url(url)
    with pytest.raises(ConfigError, match="not a loopback address"):
        make_server(_service(torch.nn.Linear(64, 5)), host="0.0.0.0")
