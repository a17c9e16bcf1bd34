"""Tests for the content-addressed artifact cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from invbench import cache as cache_mod
from invbench.cache import FORMAT_VERSION, Cache, CacheWarning, canonical_json

PARTS = {"dataset": "digits", "arch": "cnn-s", "seed": 0, "lr": 1e-3, "shape": (1, 8, 8)}


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 5))


def _trained(seed: int = 0) -> nn.Module:
    net = _net(seed)
    net.train()
    net(torch.randn(16, 1, 8, 8))  # moves BN running stats and num_batches_tracked
    return net


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ------------------------------------------------------------------ keys


def test_key_is_stable_and_canonical() -> None:
    k = Cache.key(PARTS)
    assert k == Cache.key(dict(reversed(list(PARTS.items()))))  # key order irrelevant
    assert k == Cache.key({**PARTS, "shape": [1, 8, 8]})  # tuples == lists
    assert len(k) == 32 and int(k, 16) >= 0
    # paths are their string; numpy scalars their value
    assert Cache.key({"p": Path("a/b")}) == Cache.key({"p": "a/b"})
    assert Cache.key({"x": np.int64(3), "y": np.float32(0.5)}) == Cache.key({"x": 3, "y": 0.5})
    # hard-coded: a key must not change between processes or releases silently
    assert canonical_json({"b": (1, 2.5), "a": None}) == '{"a":null,"b":[1,2.5]}'


@pytest.mark.parametrize(
    "change",
    [
        {"dataset": "mnist"},
        {"arch": "cnn-m"},
        {"seed": 1},
        {"lr": 1e-3 + 1e-12},
        {"shape": (1, 8, 9)},
        {"extra": None},
        {"seed": 0.0},  # an int and a float are different parts
    ],
)
def test_key_sensitive_to_every_part(change: dict) -> None:
    assert Cache.key({**PARTS, **change}) != Cache.key(PARTS)


def test_key_depends_on_format_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = Cache.key(PARTS)
    monkeypatch.setattr(cache_mod, "FORMAT_VERSION", FORMAT_VERSION + 1)
    assert Cache.key(PARTS) != before


@pytest.mark.parametrize("bad", [{"t": torch.zeros(2)}, {"o": object()}, {"d": {1: "a"}}])
def test_key_rejects_non_json_parts(bad: dict) -> None:
    with pytest.raises(TypeError):
        Cache.key(bad)


def test_key_rejects_nan() -> None:
    with pytest.raises(ValueError, match="finite"):
        Cache.key({"x": float("nan")})


# ------------------------------------------------------------------ modules


def test_round_trip_modules_with_bn_buffers(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    gen, disc = _trained(0), _trained(1)
    # tied weights share storage; safetensors would refuse them without a copy
    disc[3].bias = gen[3].bias
    key = Cache.key(PARTS)
    path = cache.save_modules("gan", key, {"gen": gen, "disc": disc}, {"steps": 5}, parts=PARTS)
    assert path == tmp_path / "gan" / f"{key}.safetensors" and path.exists()
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["steps"] == 5 and sidecar["parts"]["shape"] == [1, 8, 8]
    assert sidecar["format_version"] == FORMAT_VERSION and sidecar["invbench_version"]
    assert "created" in sidecar

    gen2, disc2 = _net(5), _net(6)
    meta = cache.load_modules("gan", key, {"gen": gen2, "disc": disc2})
    assert meta is not None and meta["steps"] == 5
    _assert_same_state(gen, gen2)
    _assert_same_state(disc, disc2)
    assert int(gen2[1].num_batches_tracked) == 1
    assert not torch.equal(gen2[1].running_mean, torch.zeros(4))
    # a subset of the stored modules can be loaded on its own
    only = _net(7)
    assert cache.load_modules("gan", key, {"gen": only}) is not None
    _assert_same_state(gen, only)


def test_get_or_create_calls_create_once(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    calls = []
    trained = _trained(3)

    def create_into(net: nn.Module):
        def create() -> dict:
            calls.append(1)
            net.load_state_dict(trained.state_dict())
            return {"accuracy": 0.9}

        return create

    net1 = _net(0)
    meta1, hit1 = cache.get_or_create("target", PARTS, {"model": net1}, create_into(net1))
    net2 = _net(1)
    meta2, hit2 = cache.get_or_create("target", PARTS, {"model": net2}, create_into(net2))
    assert (hit1, hit2) == (False, True) and len(calls) == 1
    assert meta1 == meta2 and meta2["accuracy"] == 0.9 and meta2["parts"]["seed"] == 0
    assert meta1["build_seconds"] >= 0
    _assert_same_state(trained, net2)
    # another part -> another entry -> create runs again
    net3 = _net(2)
    parts3 = {**PARTS, "seed": 1}
    _, hit3 = cache.get_or_create("target", parts3, {"model": net3}, create_into(net3))
    assert hit3 is False and len(calls) == 2


def test_miss_on_absent_entry(tmp_path: Path) -> None:
    assert Cache(tmp_path).load_modules("target", Cache.key(PARTS), {"m": _net()}) is None
    assert Cache(tmp_path).load_tensors("features", Cache.key(PARTS)) is None


def _saved(tmp_path: Path) -> tuple[Cache, str, Path]:
    cache = Cache(tmp_path)
    key = Cache.key(PARTS)
    path = cache.save_modules("target", key, {"model": _trained(0)}, {"acc": 0.5})
    return cache, key, path


@pytest.mark.parametrize("damage", ["bad_json", "truncated", "no_data", "garbage"])
def test_corrupt_entry_is_a_miss_then_overwritten(tmp_path: Path, damage: str) -> None:
    cache, key, path = _saved(tmp_path)
    side = path.with_suffix(".json")
    if damage == "bad_json":
        side.write_text("{not json")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "no_data":
        path.unlink()
    else:
        path.write_bytes(b"\x00" * 64)
    fresh = _net(9)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    with pytest.warns(CacheWarning, match="miss"):
        assert cache.load_modules("target", key, {"model": fresh}) is None
    for k, v in fresh.state_dict().items():  # untouched on a miss
        assert torch.equal(v, before[k])
    with pytest.warns(CacheWarning):
        meta, hit = cache.get_or_create("target", PARTS, {"model": fresh}, lambda: {"acc": 0.7})
    assert hit is False
    again = _net(10)
    assert cache.load_modules("target", key, {"model": again})["acc"] == 0.7
    _assert_same_state(fresh, again)


def test_mismatched_modules_are_a_miss(tmp_path: Path) -> None:
    cache, key, _ = _saved(tmp_path)
    wider = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 7))
    with pytest.warns(CacheWarning, match="expects"):
        assert cache.load_modules("target", key, {"model": wider}) is None
    no_bn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 5))
    with pytest.warns(CacheWarning, match="keys differ"):
        assert cache.load_modules("target", key, {"model": no_bn}) is None
    with pytest.warns(CacheWarning, match="keys differ"):  # a module that was never stored
        assert cache.load_modules("target", key, {"other": _net()}) is None


def test_sidecar_not_matching_data_is_a_miss(tmp_path: Path) -> None:
    cache, key, path = _saved(tmp_path)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["entries"]["model.3.bias"]["shape"] = [6]
    side.write_text(json.dumps(meta))
    with pytest.warns(CacheWarning, match="differ from its sidecar"):
        assert cache.load_modules("target", key, {"model": _net()}) is None


def test_failed_save_leaves_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path)
    key = Cache.key(PARTS)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.save_modules("target", key, {"model": _net()}, {})
    folder = tmp_path / "target"
    assert list(folder.iterdir()) == []  # no json, no data, no temp files


def test_failed_create_leaves_no_entry(tmp_path: Path) -> None:
    cache = Cache(tmp_path)

    def create() -> dict:
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError):
        cache.get_or_create("target", PARTS, {"model": _net()}, create)
    assert not (tmp_path / "target").exists() or not any((tmp_path / "target").iterdir())


def test_non_json_meta_is_rejected_before_writing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(TypeError):
        cache.save_modules("t", Cache.key(PARTS), {"model": _net()}, {"x": object()})
    with pytest.raises(ValueError, match="reserved"):
        cache.save_modules("t", Cache.key(PARTS), {"model": _net()}, {"parts": 1})
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


def test_bad_kind_or_module_name(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(ValueError):
        cache.path("../escape", "abc")
    with pytest.raises(ValueError):
        cache.save_modules("t", "abc", {"a.b": _net()}, {})


def test_tensors_round_trip(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {"features": base.t(), "labels": torch.tensor([1, 2, 3]), "view": base[1]}
    key = Cache.key({"evaluator": "abc", "split": "private_train"})
    cache.save_tensors("features", key, tensors, {"n": 4})
    got = cache.load_tensors("features", key)
    assert got is not None
    loaded, meta = got
    assert meta["n"] == 4 and set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype


# ------------------------------------------------------------------ integrity


def test_sidecar_carries_the_sha256_of_its_tensor_file(tmp_path: Path) -> None:
    _, _, path = _saved(tmp_path)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sidecar["format_version"] == FORMAT_VERSION >= 2


def test_flipped_byte_is_refused_and_rebuilt(tmp_path: Path) -> None:
    cache, key, path = _saved(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01  # inside the last tensor's data: the file still parses, with other values
    path.write_bytes(bytes(raw))
    from safetensors.torch import load_file

    assert set(load_file(str(path))) == {f"model.{k}" for k in _net().state_dict()}  # parses
    with pytest.warns(CacheWarning, match="sha256 of the file does not match") as record:
        assert cache.load_modules("target", key, {"model": _net(9)}) is None
    assert len(record) == 1 and "\n" not in str(record[0].message)
    rebuilt = _net(9)
    with pytest.warns(CacheWarning, match="sha256"):
        meta, hit = cache.get_or_create("target", PARTS, {"model": rebuilt}, lambda: {"acc": 0.8})
    assert hit is False and meta["acc"] == 0.8
    again = _net(10)
    assert cache.load_modules("target", key, {"model": again})["acc"] == 0.8  # no warning now
    _assert_same_state(rebuilt, again)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_entry_is_refused_and_rebuilt(tmp_path: Path, value: float) -> None:
    cache = Cache(tmp_path)
    net = _trained(0)
    with torch.no_grad():
        net[3].weight[2, 7] = value
    key = Cache.key(PARTS)
    cache.save_modules("target", key, {"model": net}, {"acc": 0.1})  # saving is allowed
    with pytest.warns(CacheWarning, match="tensor 'model.3.weight' holds NaN/Inf"):
        assert cache.load_modules("target", key, {"model": _net(9)}) is None
    fresh = _net(9)
    with pytest.warns(CacheWarning, match="NaN"):
        _, hit = cache.get_or_create("target", PARTS, {"model": fresh}, lambda: {"acc": 0.9})
    assert hit is False
    assert cache.load_modules("target", key, {"model": _net(10)})["acc"] == 0.9
    # plain tensors are checked too
    cache.save_tensors("features", key, {"f": torch.tensor([1.0, value]), "y": torch.ones(2)}, {})
    with pytest.warns(CacheWarning, match="tensor 'f' holds NaN/Inf"):
        assert cache.load_tensors("features", key) is None


def test_sidecar_without_digest_is_a_miss(tmp_path: Path) -> None:
    cache, key, path = _saved(tmp_path)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    del meta["sha256"]  # as written before format version 2
    side.write_text(json.dumps(meta))
    with pytest.warns(CacheWarning, match="no sha256 of its tensor file"):
        assert cache.load_modules("target", key, {"model": _net()}) is None
    with pytest.warns(CacheWarning, match="no sha256"):
        assert cache.load_tensors("target", key) is None


def test_digest_is_a_reserved_meta_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reserved"):
        Cache(tmp_path).save_modules("t", Cache.key(PARTS), {"model": _net()}, {"sha256": "0"})


def test_a_view_reaches_only_its_owners_entries(tmp_path) -> None:
    import pytest as _pytest
    from torch import nn as _nn

    cache = Cache(tmp_path)
    mine, other = cache.view("attack-a"), cache.view("attack-b")
    m = _nn.Linear(2, 2)
    meta, hit = mine.get_or_create("gan", {"x": 1}, {"m": m}, lambda: {"note": "built"})
    assert not hit and meta["note"] == "built"
    # the same kind and parts in another view, or in the full cache, are other entries
    _, hit_other = other.get_or_create("gan", {"x": 1}, {"m": _nn.Linear(2, 2)}, lambda: None)
    _, hit_full = cache.get_or_create("gan", {"x": 1}, {"m": _nn.Linear(2, 2)}, lambda: None)
    assert not hit_other and not hit_full
    _, hit_again = mine.get_or_create("gan", {"x": 1}, {"m": _nn.Linear(2, 2)}, lambda: None)
    assert hit_again
    assert mine.path("gan", Cache.key({"x": 1})).is_relative_to(tmp_path / "views" / "attack-a")
    with _pytest.raises(TypeError):
        mine.view("attack-b")
    with _pytest.raises(ValueError):
        cache.view("../targets")


_RACER = """
import sys, time
import torch
from torch import nn
from invbench.cache import Cache

root, log, tag = sys.argv[1], sys.argv[2], sys.argv[3]
net = nn.Linear(3, 2)

def create():
    with open(log, "a") as f:
        f.write(tag + "\\n")
    time.sleep(1.0)  # a slow build: the other process arrives while it runs
    torch.manual_seed(7)
    net.reset_parameters()
    return {"by": tag}

meta, hit = Cache(root).get_or_create("target", {"k": 1}, {"m": net}, create)
# then hammer one plain-tensor entry: every write is a complete, self-consistent pair
for i in range(20):
    Cache(root).save_tensors("features", "k" * 8, {"x": torch.full((64,), float(i))},
                             {"writer": tag})
print(int(hit), meta["by"], float(net.weight.sum()))
"""


def test_two_processes_build_one_entry_once_and_never_mix_writes(tmp_path: Path) -> None:
    import subprocess
    import sys

    log = tmp_path / "builds.txt"
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path / "c"), str(log), t],
                              stdout=subprocess.PIPE, text=True) for t in ("a", "b")]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(log.read_text().split()) == 1  # built once
    hits = sorted(int(o[0]) for o in outs)
    assert hits == [0, 1] and outs[0][1] == outs[1][1] and outs[0][2] == outs[1][2]
    got = Cache(tmp_path / "c").load_tensors("features", "k" * 8)
    assert got is not None  # the sidecar's sha256 matches the tensors beside it
    tensors, meta = got
    assert meta["writer"] in ("a", "b") and tensors["x"].unique().numel() == 1


def test_atomic_writes_get_the_umask_mode_not_mkstemps(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from invbench._io import atomic_path

    with atomic_path(tmp_path / "a.png") as tmp:  # the process's own umask
        tmp.write_bytes(b"x")
    umask = os.umask(0o022)
    os.umask(umask)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask
    monkeypatch.setattr("invbench._io._UMASK", 0o027)  # as read at import under umask 027
    with atomic_path(tmp_path / "b.png") as tmp:
        tmp.write_bytes(b"x")
    assert (tmp_path / "b.png").stat().st_mode & 0o777 == 0o640
