"""Privacy-utility analysis: intervals, the Pareto front, matched-utility scalars, MIBench's
correlation, and `invbench analyze tradeoff / accuracy-success` on a store (hand-made cells)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from invbench.analysis.tradeoff import (
    Point,
    accuracy_vs_success,
    curve_scalars,
    pareto_front,
    tradeoff,
)
from invbench.bench.store import Store
from invbench.cli import main
from invbench.errors import ConfigError

T_975_2 = 4.302652729911275  # Student's t quantile, 2 degrees of freedom


def _row(defense: str, params: dict, seed: int, acc: float, success: float, *,
         attack: str = "gmi", label: str | None = None, artifacts: dict | None = None,
         knn: float = 5.0) -> dict:
    """A ``Store.runs`` row of one finished inversion cell."""
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    return {
        "status": "done",
        "artifacts": artifacts or {},
        "result": {
            "kind": "inversion", "dataset": "fashion-mnist", "attack": attack,
            "attack_label": attack, "defense": defense, "defense_params": params,
            "defense_label": label or (f"{defense}({shown})" if params else defense),
            "seed": seed, "target_accuracy": acc,
            "metrics": {"success": success, "knn_dist": knn},
        },
    }


def _point(acc: float, value: float, name: str = "d") -> Point:
    return Point(defense=name, label=name, seeds=[0], accuracy=acc, accuracy_ci=None,
                 value=value, value_ci=None, interval="none")


def test_matched_utility_and_area_by_hand() -> None:
    base = _point(0.90, 0.40, "none")
    at, auc, auc_mean = curve_scalars(base, [_point(0.88, 0.30), _point(0.84, 0.10)])
    # curve (0.84, .10) - (0.88, .30) - (0.90, .40): linear between neighbours
    assert at["1"] == pytest.approx(0.35)
    assert at["3"] == pytest.approx(0.25)
    assert at["5"] == pytest.approx(0.15)
    assert auc == pytest.approx(0.04 * 0.2 + 0.02 * 0.35)
    assert auc_mean == pytest.approx((0.04 * 0.2 + 0.02 * 0.35) / 0.06)
    # a defense that costs less than 3 points reaches only the first
    at, _, _ = curve_scalars(base, [_point(0.885, 0.2)])
    assert at["1"] == pytest.approx(0.40 - 0.2 * (0.01 / 0.015)) and at["3"] is None


def test_pareto_front_drops_dominated_points() -> None:
    a, b, c, d = _point(0.90, 0.40), _point(0.88, 0.30), _point(0.87, 0.35), _point(0.84, 0.1)
    assert pareto_front([a, b, c, d]) == [d, b, a]  # c: b is more accurate and lower


def test_three_seeds_give_a_t_interval_and_strengths_name_the_points() -> None:
    rows = [_row("none", {}, s, a, v) for s, a, v in
            [(0, 0.89, 0.3), (1, 0.90, 0.4), (2, 0.91, 0.5)]]
    for beta, acc, val in [(0.001, 0.88, 0.3), (0.01, 0.85, 0.2)]:
        rows += [_row("mid", {"beta": beta, "k": 0}, s, acc, val) for s in range(3)]
    (curve,) = tradeoff(rows)
    base = curve.baseline
    assert base is not None and base.interval == "seeds" and base.seeds == [0, 1, 2]
    h = T_975_2 * 0.1 / np.sqrt(3)
    assert base.value == pytest.approx(0.4)
    assert base.value_ci == pytest.approx((0.4 - h, 0.4 + h))
    labels = [p.label for p in curve.defenses["mid"]]
    assert labels == ["mid(beta=0.001)", "mid(beta=0.01)"]  # k is the same on both: left out
    assert curve.at_loss["mid"]["1"] == pytest.approx(0.35)
    assert [p.label for p in curve.front] == ["mid(beta=0.01)", "mid(beta=0.001)", "none"]


def test_fewer_seeds_bootstrap_over_reconstructions(tmp_path: Path) -> None:
    rec = tmp_path / "rec.safetensors"
    save_file({"images": torch.zeros(40, 1, 4, 4), "labels": torch.zeros(40, dtype=torch.long),
               "img_success": (torch.arange(40) % 4 == 0).to(torch.uint8)}, str(rec))
    rows = [_row("none", {}, 0, 0.9, 0.25, artifacts={"reconstructions": str(rec)}),
            _row("mid", {"beta": 0.01}, 0, 0.85, 0.2)]  # no per-image file: no interval
    (curve,) = tradeoff(rows)
    base = curve.baseline
    assert base is not None and base.interval == "bootstrap"
    lo, hi = base.value_ci
    assert 0.05 < lo < 0.25 < hi < 0.45  # 10 of 40 images: roughly +-0.13
    (mid,) = curve.defenses["mid"]
    assert mid.interval == "none" and mid.value_ci is None
    with pytest.raises(ConfigError, match="--metric 'fid'.*knn_dist, success"):
        tradeoff(rows, metric="fid")


def test_accuracy_vs_success_rank_correlation() -> None:
    rows = [_row("none", {}, s, a, v) for s, (a, v) in
            enumerate([(0.7, 0.1), (0.8, 0.25), (0.85, 0.2), (0.9, 0.5)])]
    rows += [_row("mid", {"beta": 0.1}, 0, 0.95, 0.0)]  # another defense: not counted
    rows += [_row("none", {}, s, a, v, attack="mi-face") for s, (a, v) in
             enumerate([(0.7, 0.1), (0.9, 0.2)])]
    corr = {c.attack: c for c in accuracy_vs_success(rows)}
    # ranks of success 1, 3, 2, 4 against 1, 2, 3, 4: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert corr["gmi"].n == 4 and corr["gmi"].spearman == pytest.approx(0.8)
    assert corr["mi-face"].n == 2 and corr["mi-face"].spearman is None
    with pytest.raises(ConfigError, match="no finished 'bido' cell"):
        accuracy_vs_success(rows, defense="bido")


def _store(out: Path, rows: list[dict]) -> None:
    out.mkdir()
    with Store(out / "invbench.sqlite") as store:
        for i, r in enumerate(rows):
            store.record(spec_hash=f"h{i}", kind="benchmark", spec={"train": {"arch": "cnn-s"}},
                         result=r["result"], metrics={}, artifacts=r["artifacts"], seconds=1.0)


def test_analyze_commands_on_a_store(tmp_path: Path, capsys) -> None:
    rows = [_row("none", {}, s, a, v) for s, a, v in [(0, 0.89, 0.3), (1, 0.9, 0.4),
                                                       (2, 0.91, 0.5)]]
    rows += [_row("bido", {"lambda_x": lx}, s, acc, val) for lx, acc, val in
             [(0.02, 0.89, 0.3), (0.1, 0.86, 0.1)] for s in range(3)]
    out = tmp_path / "runs"
    _store(out, rows)
    assert main(["analyze", "tradeoff", "--out", str(out), "--png-dir", str(tmp_path / "png"),
                 "--json"]) == 0
    (curve,) = json.loads(capsys.readouterr().out)
    assert curve["baseline"]["value"] == pytest.approx(0.4)
    assert curve["at_loss"]["bido"]["3"] == pytest.approx(0.1 + 0.2 * (0.01 / 0.03))
    assert Path(curve["plot"]).name == "tradeoff-fashion-mnist-gmi.png"
    assert Path(curve["plot"]).read_bytes()[:4] == b"\x89PNG"
    plot = tmp_path / "acc.png"
    assert main(["analyze", "accuracy-success", "--out", str(out), "-o", str(plot),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["correlations"][0]["n"] == 3 and plot.read_bytes()[:4] == b"\x89PNG"
    assert main(["analyze", "tradeoff", "--out", str(out), "--metric", "nope"]) == 2
    assert "--metric 'nope'" in capsys.readouterr().err
    assert main(["analyze", "tradeoff", "--out", str(tmp_path / "none")]) == 2
    assert "no store at" in capsys.readouterr().err
