"""Sweep specs: grids expand per method or cross, zip pairs, seeds multiply, errors are lines."""

from __future__ import annotations

import pytest

from invbench.bench.grid import expand, load_sweep
from invbench.errors import ConfigError


def _cells(raw):
    return [(c.defenses[0].label, c.attacks[0].label, c.seed, c.train.epochs)
            for c in expand(raw).cells]


def test_grid_in_a_method_expands_that_method_only():
    cells = _cells({"defenses": ["none", {"mid": {"beta": {"grid": [0.003, 0.03]}}}],
                    "attacks": ["mi-face"]})
    assert [c[0] for c in cells] == ["none", "mid:beta=0.003", "mid:beta=0.03"]


def test_two_method_grids_give_the_union_not_a_product():
    cells = _cells({"defenses": ["none", {"mid": {"beta": {"grid": [0.003, 0.03]}}},
                                {"bido": {"lambda_x": {"grid": [0.02, 0.1]}}}],
                    "attacks": ["mi-face"]})
    assert sorted(c[0] for c in cells) == sorted(
        ["none", "mid:beta=0.003", "mid:beta=0.03", "bido:lambda_x=0.02",
         "bido:lambda_x=0.1"])


def test_grid_outside_methods_crosses_and_seeds_multiply():
    cells = _cells({"defenses": ["none"], "attacks": ["mi-face", "gmi"],
                    "train": {"epochs": {"grid": [2, 4, 8]}}, "seeds": [0, 1]})
    assert len(cells) == 3 * 2 * 2
    assert {(c[1], c[2], c[3]) for c in cells} == {
        (a, s, e) for a in ("mi-face", "gmi") for s in (0, 1) for e in (2, 4, 8)}


def test_zip_pairs_values_instead_of_crossing():
    cells = _cells({"defenses": ["none"], "attacks": ["mi-face"],
                    "zip": {"train.arch": ["cnn-s", "cnn-m"], "train.epochs": [20, 10]}})
    sweep = expand({"defenses": ["none"], "attacks": ["mi-face"],
                    "zip": {"train.arch": ["cnn-s", "cnn-m"], "train.epochs": [20, 10]}})
    assert [(c.train.arch, c.train.epochs) for c in sweep.cells] == [("cnn-s", 20),
                                                                     ("cnn-m", 10)]
    assert len(cells) == 2


def test_zip_reaches_into_a_method_by_index():
    sweep = expand({"defenses": ["none", {"bido": {}}], "attacks": ["mi-face"],
                    "zip": {"defenses.1.bido.lambda_x": [0.02, 0.1],
                            "defenses.1.bido.lambda_y": [0.2, 1.0]}})
    bido = [c.defenses[0].params for c in sweep.cells if c.defenses[0].name == "bido"]
    assert bido == [{"lambda_x": 0.02, "lambda_y": 0.2}, {"lambda_x": 0.1, "lambda_y": 1.0}]
    assert sum(c.defenses[0].name == "none" for c in sweep.cells) == 1  # not once per value


def test_a_plain_list_stays_a_list_parameter():
    sweep = expand({"defenses": ["none"], "attacks": ["mi-face"], "labels": [0, 2]})
    assert len(sweep.cells) == 1 and sweep.cells[0].labels == [0, 2]


def test_threads_and_defaults():
    sweep = expand({"defenses": ["none"], "attacks": ["mi-face"], "seed": 3, "threads": 2})
    assert sweep.threads == 2 and [c.seed for c in sweep.cells] == [3]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"zip": {"train.epochs": [1, 2], "train.lr": [0.1]}}, "different lengths"),
        ({"zip": {"defenses.5.mid.beta": [0.1]}}, "not an index"),
        ({"train": {"epochs": {"grid": []}}}, "non-empty list"),
        ({"seeds": [0, 0]}, "twice"),
        ({"seeds": [-1]}, "seeds"),
        ({"seeds": [0], "seed": 1}, "not both"),
        ({"threads": 0}, "threads"),
        ({"defenses": [{"mid": {"beta": {"grid": [0.01, -1.0]}}}]}, "beta=-1.0"),
        ({"target_url": "http://127.0.0.1:1/"}, "target_url"),
        ({"bogus": {"grid": [1, 2]}}, "unknown field 'bogus'"),
    ],
)
def test_bad_sweeps_are_one_line_naming_the_field(raw, needle):
    with pytest.raises(ConfigError) as err:
        expand({"defenses": ["none"], "attacks": ["mi-face"], **raw})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_load_sweep_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("defenses: [none\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sweep(bad)
