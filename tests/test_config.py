"""Specs are validated completely, with one-line errors, before any work."""

from __future__ import annotations

import pytest

from invbench.config import check_device, load_spec, make_spec, parse_method
from invbench.errors import ConfigError


def test_parse_method():
    m = parse_method("mid:beta=0.01,samples=5")
    assert m.name == "mid" and m.params == {"beta": 0.01, "samples": 5}
    assert parse_method("gmi").params == {}
    assert parse_method("mi-face:loss=ce,init=uniform").params == {"loss": "ce", "init": "uniform"}


@pytest.mark.parametrize(
    "text, match",
    [
        ("mid:beta", "expected key=value"),
        ("mid:beta=1,beta=2", "given twice"),
        ("MID!", "invalid method"),
    ],
)
def test_parse_method_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_method(text)


def test_defaults():
    spec = make_spec()
    assert spec.dataset == "digits" and spec.seed == 0
    assert [m.name for m in spec.defenses] == ["none", "mid"]
    assert [m.name for m in spec.attacks] == ["mi-face", "gmi"]


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"dataset": "cifar-1000"}, "unknown dataset 'cifar-1000'; choose one of: digits"),
        ({"defenses": [parse_method("no-such-defense")]},
         "unknown defense 'no-such-defense'; choose one of: bido, dp-sgd, label-smoothing,"),
        ({"attacks": [parse_method("mi-face:stepz=3")]}, "has no parameter 'stepz'"),
        (
            {"attacks": [parse_method("mi-face:steps=-1")]},
            "The 'steps' parameter of attack 'mi-face' must be >= 1. Got -1 instead.",
        ),
        ({"defenses": [parse_method("mid:beta=abc")]}, "The 'beta' parameter of defense 'mid'"),
        ({"data_dir": "/no/such/folder"}, "data_dir '/no/such/folder' does not exist"),
        ({"per_label": 0}, "field 'per_label'"),
        ({"device": "tpu"}, "device 'tpu' is not valid"),
        ({"defenses": [parse_method("none"), parse_method("none")]}, "listed twice"),
    ],
)
def test_bad_specs(fields, match):
    with pytest.raises(ConfigError, match=match):
        make_spec(**fields)


def test_cuda_unavailable_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        check_device("cuda")


def test_yaml_spec(tmp_path):
    f = tmp_path / "spec.yaml"
    f.write_text(
        "dataset: digits\nseed: 3\ndefenses:\n  - none\n  - mid: {beta: 0.1}\n"
        "attacks:\n  - mi-face: {steps: 10}\ntrain: {epochs: 2}\n"
    )
    spec = load_spec(f, seed=4)
    assert spec.seed == 4 and spec.train.epochs == 2
    assert spec.defenses[1].params == {"beta": 0.1}
    assert spec.attacks[0].label == "mi-face:steps=10"


@pytest.mark.parametrize(
    "text, match",
    [
        ("dataset: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("datset: digits\n", "unknown field 'datset'"),
        ("train: {epochs: 0}\n", "field 'train.epochs'"),
        ("train: {arch: resnet}\n", "'resnet' is not a target family"),
        ("train: {arch: mobile}\n", "'mobile' is not a target family"),
    ],
)
def test_bad_yaml(tmp_path, text, match):
    f = tmp_path / "spec.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_spec(f)


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"attacks": [{"gmi": 5}]}, "'gmi: 5' is not a method"),
        ({"attacks": [7]}, "is not a method"),
        ({"seed": 2**63}, "field 'seed'"),
        ({"labels": [0, 2, 0]}, r"labels: \[0\] listed more than once"),
        ({"attacks": ["gmi", "gmi:restarts=5"]}, "listed twice"),
        ({"defenses": ["mid", "mid:beta=0.01"]}, "listed twice"),
        ({"attacks": ["gmi:iterations=true"]}, "must be of type int"),
        ({"per_label": True}, "field 'per_label'"),
        ({"protocol": {"max_per_class": 1}}, "max_per_class"),
        ({"evaluator": {"others": ["cnn-m"]}}, "is a target family"),
        ({"evaluator": {"others": ["resnet"]}}, "used twice"),
        ({"evaluator": {"others": []}}, "at least 3"),
        ({"evaluator": {"robust": {"arch": "cnn-s"}}}, "evaluator.robust.arch"),
        ({"references": {"per_class": 0}}, "per_class"),
    ],
)
def test_spec_mends_are_one_line_errors(fields, match):
    with pytest.raises(ConfigError, match=match) as info:
        make_spec(**fields)
    assert "\n" not in str(info.value)


def test_yaml_bad_method_shape_is_one_line(tmp_path):
    f = tmp_path / "spec.yaml"
    f.write_text("attacks:\n  - gmi: 5\n")
    with pytest.raises(ConfigError, match="'gmi: 5' is not a method"):
        load_spec(f)


def test_ensemble_families_in_order():
    spec = make_spec(evaluator={"others": ["vit", "mlp"]})
    assert spec.evaluator.families((1, 8, 8)) == ["resnet", "vit", "mlp", "dense"]
