"""Tests for report tables, comparison grids and trade-off plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from invbench.errors import ConfigError, DataError
from invbench.report import results_table, runs_table, save_comparison_grid, tradeoff_plot
from invbench.report.grids import BACKGROUND, PAD, SEP, SEPARATOR


def _render(table) -> str:
    console = Console(record=True, width=260, color_system=None)
    console.print(table)
    return console.export_text()


RESULT = {
    "dataset": "digits",
    "defense": "mid",
    "defense_params": {"beta": 0.01},
    "attack": "mi-face",
    "attack_params": {"steps": 500},
    "seed": 0,
    "target_accuracy": 0.9712,
    "status": "done",
    "metrics": {"acc1": 0.625, "acc5": 0.9, "acc1_std": 0.031, "acc5_std": 0.02, "knn_dist": 3.5,
                "success": 0.4, "success_lo": 0.25, "success_hi": 0.6, "fid": None},
    "references": {
        "private_test": {"acc1": 0.99, "acc5": 1.0, "knn_dist": 1.25, "success": 0.9},
        "noise": {"acc1": 0.2, "acc5": 1.0, "knn_dist": 9.75, "success": 0.0},
        "adversarial": {"acc1": 0.8, "success": 0.05},
    },
    "warnings": ["acc1 is fooled: adversarial noise scores 0.80 against 0.20 for uniform noise"],
    "queries": 12500,
    "seconds": 4.26,
}


def test_results_table_formats_every_column() -> None:
    plain = {**RESULT, "defense": "none", "defense_params": {}, "metrics": {"acc1": 0.8}}
    text = _render(results_table([RESULT, plain], title="digits"))
    for expected in ("mid(beta=0.01)", "mi-face(steps=500)", "97.1%", "62.5 ± 3.1%",
                     "40% [25-60]", "3.50", "90.0%", "0.0%", "5.0%", "12,500", "4.3",
                     "none", "80.0%", "digits"):
        assert expected in text, expected
    headers = [c.header for c in results_table([RESULT]).columns]
    assert headers == ["defense", "attack", "target acc", "success", "acc1", "KNN dist", "FID",
                       "real success", "noise success", "adv success", "warn", "queries",
                       "seconds"]  # one dataset, one seed: no dataset/seed columns
    picked = [c.header for c in results_table([RESULT], metrics=["acc5", "kid"]).columns]
    assert picked[3:5] == ["acc5", "KID"]
    failed = {"status": "failed", "defense": "none", "attack": "gmi", "error": "boom",
              "seconds": 1.0}
    assert "failed" in _render(results_table([failed]))
    # missing values print as "-", never as a number
    row_plain = [line for line in text.splitlines() if "none" in line][0]
    assert "-" in row_plain and "nan" not in text.lower()


def test_results_table_adds_dataset_and_seed_columns() -> None:
    other = {**RESULT, "dataset": "mnist", "seed": 3}
    table = results_table([RESULT, other])
    names = [c.header for c in table.columns]
    assert names[:4] == ["dataset", "defense", "attack", "seed"]
    assert table.row_count == 2


def test_runs_table_from_store_rows() -> None:
    rows = [
        {"id": 1, "kind": "run", "status": "done", "spec_hash": "ab", "seconds": 12.0,
         "created": "2026-01-02T03:04:05+00:00", "spec": {"dataset": "digits"},
         "result": RESULT, "metrics": {"attack.acc1": 0.5, "target.accuracy": 0.93}},
        {"id": 2, "kind": "train", "status": "failed", "spec_hash": "cd", "seconds": 1.0,
         "created": "2026-01-02T03:05:05+00:00",
         "spec": {"dataset": "mnist", "defense": {"name": "bido", "params": {"a": 2}}},
         "result": {"error": "boom"}, "metrics": {}},
    ]
    text = _render(runs_table(rows))
    for expected in ("digits", "mid(beta=0.01)", "mi-face", "50.0 ± 3.1%", "93.0%", "3.50",
                     "12.0", "2026-01-02 03:04:05", "failed", "mnist", "bido(a=2)"):
        assert expected in text, expected
    # stored metrics win over the payload's (0.5, not 0.625)
    assert "62.5" not in text


def _digits_like() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    private = torch.rand(12, 1, 8, 8, generator=g) * 0.5
    private_labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2])
    private[0] = 1.0  # a pure white private sample of class 0 (first cell of the first row)
    recon = torch.rand(7, 1, 8, 8, generator=g) * 0.5
    recon_labels = torch.tensor([1, 0, 1, 1, 0, 1, 1])  # class 2 has no reconstructions
    recon[1] = 0.0  # the first class-0 reconstruction is black
    return private, private_labels, recon, recon_labels


def test_grid_size_and_content(tmp_path: Path) -> None:
    private, plab, recon, rlab = _digits_like()
    scale, columns = 4, 3
    out = save_comparison_grid(
        tmp_path / "sub" / "grid.png", private=private, private_labels=plab, recon=recon,
        recon_labels=rlab, class_names=["zero", "one", "two"], columns=columns, scale=scale,
    )
    img = np.asarray(Image.open(out).convert("RGB"))
    cell = 8 * scale  # text of the default font is shorter than 32 px
    n_priv, n_rec, rows = 4, 3, 2  # classes 0 and 1 only (2 has no reconstructions)
    assert img.shape[0] == PAD + rows * (cell + PAD)
    right = n_rec * (cell + PAD) + PAD + SEP + n_priv * (cell + PAD) + PAD
    label_w = img.shape[1] - right
    assert 10 < label_w < 200
    x_priv = label_w + PAD
    x_sep = x_priv + n_priv * (cell + PAD)
    x_rec = x_sep + SEP + PAD
    y0 = PAD
    # the white private sample, upscaled, is pure white
    assert (img[y0 : y0 + cell, x_priv : x_priv + cell] == 255).all()
    # class 0's first reconstruction (recon[1]) is black; class 0 has only 2 reconstructions,
    # so its third cell is background
    assert (img[y0 : y0 + cell, x_rec : x_rec + cell] == 0).all()
    assert (img[y0 : y0 + cell, x_rec + 2 * (cell + PAD) :][:, :cell] == BACKGROUND).all()
    # class 0 has 3 private samples: the fourth private cell is background
    x4 = x_priv + 3 * (cell + PAD)
    assert (img[y0 : y0 + cell, x4 : x4 + cell] == BACKGROUND).all()
    # separator bar spans the full height
    assert (img[:, x_sep : x_sep + SEP] == SEPARATOR).all()
    # nearest-neighbour upscaling: each source pixel is a constant scale x scale block
    y1 = PAD + (cell + PAD)
    block = img[y1 : y1 + scale, x_rec : x_rec + scale, 0]  # row 1 = class 1, recon[0]
    assert (block == block[0, 0]).all()
    assert block[0, 0] == round(float(recon[0, 0, 0, 0]) * 255)
    # the label column holds drawn (light, anti-aliased) text on each row
    assert img[y0 : y0 + cell, :label_w].max() > 150
    assert img[y1 : y1 + cell, :label_w].max() > 150
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_grid_rgb_and_errors(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    rgb = torch.rand(4, 3, 6, 6, generator=g)
    rgb[0, 0], rgb[0, 1], rgb[0, 2] = 1.0, 0.0, 0.0  # a red image
    labels = torch.tensor([0, 0, 1, 1])
    out = save_comparison_grid(
        tmp_path / "rgb.png", private=rgb, private_labels=labels, recon=rgb, recon_labels=labels,
        class_names=None, scale=2,
    )
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[0] >= PAD + 2 * (12 + PAD)  # text may be taller than a 12 px cell
    assert ((img == [255, 0, 0]).all(axis=-1)).sum() >= 2 * 12 * 12  # private + recon copies

    kw = dict(private_labels=labels, recon_labels=labels, class_names=None)
    with pytest.raises(DataError, match="NaN"):
        save_comparison_grid(tmp_path / "x.png", private=rgb, recon=rgb * float("nan"), **kw)
    with pytest.raises(DataError, match="same size"):
        save_comparison_grid(tmp_path / "x.png", private=rgb, recon=rgb[:, :, :4, :4], **kw)
    with pytest.raises(DataError, match="shape"):
        save_comparison_grid(tmp_path / "x.png", private=rgb[:, :2], recon=rgb, **kw)
    with pytest.raises(ConfigError, match="suffix"):
        save_comparison_grid(tmp_path / "x.txt", private=rgb, recon=rgb, **kw)
    with pytest.raises(ConfigError, match="columns"):
        save_comparison_grid(tmp_path / "x.png", private=rgb, recon=rgb, columns=0, **kw)
    with pytest.raises(DataError, match="label 1"):
        save_comparison_grid(tmp_path / "x.png", private=rgb, recon=rgb,
                             private_labels=labels, recon_labels=labels, class_names=["a"])
    assert not (tmp_path / "x.png").exists()


def test_tradeoff_plot_written(tmp_path: Path) -> None:
    curves = {"mid": [(0.97, 0.8), (0.95, 0.6), (0.9, 0.3)], "bido": [(0.96, 0.7)]}
    out = tradeoff_plot(tmp_path / "t.png", curves, xlabel="target acc", ylabel="attack acc1",
                        title="digits", baseline=0.2)
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > 300 and img.size[1] > 200
    assert len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0)) > 10
    svg = tradeoff_plot(tmp_path / "t.svg", curves, xlabel="x", ylabel="y", title="t")
    assert "<svg" in svg.read_text()[:500]
    with pytest.raises(DataError, match="NaN"):
        tradeoff_plot(tmp_path / "n.png", {"a": [(0.1, float("nan"))]}, xlabel="x",
                      ylabel="y", title="t")
    with pytest.raises(ConfigError):
        tradeoff_plot(tmp_path / "n.xyz", curves, xlabel="x", ylabel="y", title="t")
    assert not (tmp_path / "n.png").exists()


def test_tradeoff_plot_intervals(tmp_path: Path) -> None:
    curves = {"mid": [(0.97, 0.8), (0.9, 0.3)]}
    plain = tradeoff_plot(tmp_path / "a.svg", curves, xlabel="x", ylabel="y", title="t")
    with_bars = tradeoff_plot(tmp_path / "b.svg", curves, xlabel="x", ylabel="y", title="t",
                              intervals={"mid": [(0.7, 0.9), (0.2, 0.45)]})
    assert len(with_bars.read_text()) > len(plain.read_text())  # the error bars are drawn
    with pytest.raises(DataError, match="does not contain its point"):
        tradeoff_plot(tmp_path / "c.png", curves, xlabel="x", ylabel="y", title="t",
                      intervals={"mid": [(0.85, 0.9), (0.2, 0.45)]})
    with pytest.raises(DataError, match="2 points but 1 intervals"):
        tradeoff_plot(tmp_path / "c.png", curves, xlabel="x", ylabel="y", title="t",
                      intervals={"mid": [(0.7, 0.9)]})
    assert not (tmp_path / "c.png").exists()


def test_plot_leaves_pyplot_backend_alone(tmp_path: Path) -> None:
    import sys

    import matplotlib

    had_pyplot = "matplotlib.pyplot" in sys.modules
    raw_backend = dict.__getitem__(matplotlib.rcParams, "backend")
    tradeoff_plot(tmp_path / "p.png", {"a": [(0.0, 1.0)]}, xlabel="x", ylabel="y", title="t")
    assert dict.__getitem__(matplotlib.rcParams, "backend") == raw_backend
    if not had_pyplot:
        assert "matplotlib.pyplot" not in sys.modules
