"""run_tradeoff returns the issue's JSON shape; plot_tradeoff writes the figure."""

from __future__ import annotations

import json
import math

import pytest

from invbench.errors import ConfigError
from invbench.tabular.data import synthetic_warfarin
from invbench.tabular.tradeoff import plot_tradeoff, run_tradeoff

POINT_KEYS = {"defense", "param", "utility", "utility_metric", "attack_acc_train",
              "attack_acc_test", "attack_f1_train", "attack_f1_test"}


@pytest.fixture(scope="module")
def data():
    return synthetic_warfarin(n=500, seed=0)


@pytest.fixture(scope="module")
def regression(data):
    return run_tradeoff(data, task="regression", lams=[0.3, 30.0], epsilons=[1.0, 1000.0],
                        repeats=2, quiet=True)


def test_regression_result_has_the_issue_shape(regression):
    res = json.loads(json.dumps(regression))  # JSON-able as is
    assert set(res) == {"dataset", "sensitive", "task", "baseline", "points"}
    assert (res["dataset"], res["sensitive"], res["task"]) == ("synthetic", "vkorc1",
                                                              "regression")
    assert 0.25 < res["baseline"] < 0.5
    got = [(p["defense"], p["param"]) for p in res["points"]]
    assert got == [("none", None), ("mid", 0.3), ("mid", 30.0), ("dp-functional", 1.0),
                   ("dp-functional", 1000.0), ("dp-sgd", 1.0), ("dp-sgd", 1000.0)]
    for p in res["points"]:
        assert set(p) == POINT_KEYS and p["utility_metric"] == "mse"
        assert p["utility"] > 0 and math.isfinite(p["utility"])
        for k in ("attack_acc_train", "attack_acc_test", "attack_f1_train", "attack_f1_test"):
            assert 0.0 <= p[k] <= 1.0
    pts = {(p["defense"], p["param"]): p for p in res["points"]}
    # the undefended attack beats the baseline; strong MID costs MSE and attack accuracy
    assert pts[("none", None)]["attack_acc_test"] > res["baseline"] + 0.15
    assert pts[("mid", 30.0)]["utility"] > pts[("none", None)]["utility"]
    assert pts[("mid", 30.0)]["attack_acc_test"] < pts[("none", None)]["attack_acc_test"]


def test_tree_task_and_bad_arguments(data):
    res = run_tradeoff(data, task="tree", lams=[0.05], epsilons=[5.0], repeats=1, quiet=True)
    assert [p["defense"] for p in res["points"]] == ["none", "mid", "dp-id3"]
    assert all(p["utility_metric"] == "f1" and 0 <= p["utility"] <= 1 for p in res["points"])
    with pytest.raises(ConfigError, match="lam"):
        run_tradeoff(data, lams=[-1.0], quiet=True)
    with pytest.raises(ConfigError, match="eps"):
        run_tradeoff(data, epsilons=[0.0], quiet=True)
    with pytest.raises(ConfigError, match="'task' parameter"):
        run_tradeoff(data, task="forest", quiet=True)
    with pytest.raises(ConfigError, match="'repeats' parameter"):
        run_tradeoff(data, repeats=0, quiet=True)


def test_plot_is_written(regression, tmp_path):
    path = plot_tradeoff(regression, tmp_path / "sub" / "curve.png")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
