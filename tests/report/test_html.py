"""`invbench report`: the self-contained HTML page, checked as text and in a real browser."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from invbench.bench.store import Store
from invbench.cli import main
from invbench.report.html import image_png, render_report

#: set to a path to keep the browser's full-page screenshot of the report (docs/img/report.png)
SCREENSHOT_ENV = "INVBENCH_REPORT_SCREENSHOT"


def _cells(out: Path) -> list[dict]:
    with Store(out / "invbench.sqlite") as store:
        return store.runs(kind="benchmark")


def _tensors(path: Path, *, with_private: bool = True, n_classes: int = 2) -> Path:
    """A tiny reconstructions file: 2 images per class, 3 private and 3 held-out per class."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n_classes).repeat_interleave(2)
    data = {"images": torch.rand(len(labels), 1, 8, 8, generator=g), "labels": labels,
            "img_success": (torch.arange(len(labels)) % 2).to(torch.uint8),
            "img_vote_a": labels.clone(), "img_vote_b": torch.zeros_like(labels)}
    if with_private:
        per = torch.arange(n_classes).repeat_interleave(3)
        data.update(private_images=torch.rand(len(per), 1, 8, 8, generator=g),
                    private_labels=per,
                    heldout_images=torch.rand(len(per), 1, 8, 8, generator=g),
                    heldout_labels=per.clone())
    save_file(data, str(path))
    return path


def _row(run_id: int, tmp_path: Path, **result) -> dict:
    base = {"kind": "inversion", "status": "done", "dataset": "digits", "defense": "none",
            "defense_label": "none", "attack": "mi-face", "attack_label": "mi-face", "seed": 0,
            "target_accuracy": 0.9,
            "metrics": {"success": 0.5, "success_lo": 0.2, "success_hi": 0.8, "acc1": 0.75,
                        "knn_dist": 3.0},
            "references": {"private_test": {"success": 0.9}, "noise": {"success": 0.0},
                           "adversarial": {"success": 0.05}},
            "warnings": [], "queries": 100, "seconds": 1.5}
    base.update(result)
    rec = _tensors(tmp_path / f"cell{run_id}.safetensors")
    return {"id": run_id, "kind": "benchmark", "status": base["status"], "result": base,
            "artifacts": {"reconstructions": str(rec)}}


def test_image_png_upscales_by_nearest_neighbour_and_keeps_grayscale() -> None:
    x = torch.zeros(1, 8, 8)
    x[0, 0, 0] = 1.0
    img = Image.open(io.BytesIO(image_png(x)))
    assert img.size == (64, 64) and img.mode == "L"
    assert img.getpixel((7, 7)) == 255 and img.getpixel((8, 8)) == 0  # one pixel -> 8x8 block
    rgb = Image.open(io.BytesIO(image_png(torch.rand(3, 32, 16))))
    assert rgb.size == (32, 64) and rgb.mode == "RGB"


def test_report_escapes_strings_and_shows_failed_update_and_old_cells(tmp_path) -> None:
    evil = "<script>alert(1)</script>"
    done = _row(1, tmp_path, defense_label=evil, warnings=[f"w {evil}"])
    failed = {"id": 2, "status": "failed", "result": {
        "kind": "inversion", "status": "failed", "dataset": "digits", "defense": "mid",
        "attack": "gmi", "error": "boom <b>", "seconds": 2.0}, "artifacts": {}}
    update = {"id": 3, "status": "done", "result": {
        "kind": "update", "status": "done", "defense": "none", "attack": "idlg",
        "target_accuracy": 0.9, "metrics": {"label_acc": 0.8},
        "references": {"baseline": {"label_acc": 0.2}}, "queries": 1, "seconds": 1.0},
        "artifacts": {}}
    grid = tmp_path / "grid.png"
    Image.new("RGB", (20, 10), (200, 10, 10)).save(grid)
    old = _row(4, tmp_path)
    _tensors(Path(old["artifacts"]["reconstructions"]), with_private=False)
    old["artifacts"]["grid"] = str(grid)
    figure = ("trade-off <i>", image_png(torch.rand(3, 8, 8)))
    text = render_report([done, failed, update, old], title=f"t {evil}", figures=[figure])
    assert text.count("<figure>") == 1 and "<figcaption>trade-off &lt;i&gt;</figcaption>" in text
    assert evil not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "boom &lt;b&gt;" in text  # the failed cell's error, escaped
    results = text[text.index('class="sortable results"'):text.index("</table>")]
    assert results.count("<tr class=") == 3  # done, failed, old: inversion cells only
    assert 'class="sortable updates"' in text and "0.80 (0.20)" in text
    assert 'id="cell-1"' in text and 'id="cell-4"' in text and 'id="cell-2"' not in text
    cell1 = text[text.index('id="cell-1"'):text.index('id="cell-4"')]
    # 2 classes x (3 private + 2 reconstructions), the successes framed green
    assert cell1.count("<img") == 10 and cell1.count('class="recon ok"') == 2
    assert "stored without its private images" in text[text.index('id="cell-4"'):]
    assert "Human judging" not in text
    assert "http://" not in text and "https://" not in text


def test_report_judging_section_has_the_hand_counted_rates(tmp_path) -> None:
    row = _row(7, tmp_path, attack_label="gmi")
    j = [  # images 0, 1 are class 0; votes a = claimed label, b = 0; img_success = [0,1,0,1]
        {"run_id": 7, "judge": "ann", "item": "r:0", "kind": "reconstruction", "index": 0,
         "claimed": 0, "answer": "yes"},
        {"run_id": 7, "judge": "ann", "item": "r:2", "kind": "reconstruction", "index": 2,
         "claimed": 1, "answer": "no"},
        {"run_id": 7, "judge": "ann", "item": "r:3", "kind": "reconstruction", "index": 3,
         "claimed": 1, "answer": "unsure"},
        {"run_id": 7, "judge": "ann", "item": "cp:0:1", "kind": "control-positive",
         "index": -1, "claimed": 0, "answer": "yes"},
        {"run_id": 7, "judge": "ann", "item": "cn:0:4", "kind": "control-negative",
         "index": -1, "claimed": 0, "answer": "yes"},
    ]
    text = render_report([row], judgements=j)
    section = text[text.index('id="human"'):text.index('id="images"')]
    # human success 1 of 2 decided (1 unsure): 50% [9-91]; the judge 1 of 2 controls right
    assert "50% [9-91]" in section and section.count("50% [9-91]") == 3  # attack, cell, judge
    # success said no to image 0 (human yes): FN 1/1; said no to image 2 (human no): FP 0/1
    assert "<td data-v=\"success\">success</td><td data-v=\"0.0\">0% (0/1)</td>" \
           "<td data-v=\"1.0\">100% (1/1)</td>" in section
    # vote_b says class 0 for everything: image 2 (claimed 1) no -> FP 0/1, image 0 yes -> FN 0
    assert "vote_b</td><td data-v=\"0.0\">0% (0/1)</td><td data-v=\"0.0\">0% (0/1)" in section


def test_report_cli_missing_store_is_one_line(tmp_path, capsys) -> None:
    code = main(["report", "--out", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("invbench: error: no store at") and "invbench run --out" in err


def test_report_cli_writes_the_page_and_prints_json(bench_out, tmp_path, capsys) -> None:
    target = tmp_path / "r.html"
    code = main(["report", "--out", str(bench_out), "-o", str(target), "--json", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out) == {"report": str(target), "cells": 4}
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "--out", str(bench_out), "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(bench_out / "report.html")


def test_report_in_a_real_browser(bench_out, tmp_path, browser, console_errors) -> None:
    from selenium.webdriver.common.by import By

    rows = _cells(bench_out)
    path = tmp_path / "report.html"  # as users get it: with the trade-off plots, if any
    assert main(["report", "--out", str(bench_out), "-o", str(path), "--quiet"]) == 0
    text = path.read_text()
    # self-contained: no resource (or any other) URL of the network
    assert not re.search(r"https?://", text)
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!["']|data:|#)""", text)
    browser.get(path.as_uri())
    assert browser.title == "invbench report"
    assert console_errors() == []

    table = browser.find_element(By.CSS_SELECTOR, "table.results")
    body_rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(body_rows) == len(rows) == 4

    def column(name: str) -> list[str]:
        heads = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
        col = heads.index(name) + 1
        return [td.get_attribute("data-v") for td in
                table.find_elements(By.CSS_SELECTOR, f"tbody tr td:nth-child({col})")]

    knn = {r["id"]: r["result"]["metrics"]["knn_dist"] for r in rows}
    header = table.find_element(By.XPATH, ".//th[normalize-space()='KNN dist']")
    header.click()
    assert [float(v) for v in column("KNN dist")] == sorted(knn.values())
    assert [int(v) for v in column("id")] == sorted(knn, key=knn.get)
    assert header.get_attribute("aria-sort") == "ascending"
    header.click()
    assert [int(v) for v in column("id")] == sorted(knn, key=knn.get, reverse=True)
    success = table.find_element(By.XPATH, ".//th[normalize-space()='success']")
    success.click()
    values = [float(v) for v in column("success")]
    assert values == sorted(values)

    # every image decoded: 4 cells x 5 classes x (8 private + 2 reconstructions), + figures
    sizes = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth]);")
    figures = len(browser.find_elements(By.CSS_SELECTOR, "figure img"))
    assert len(sizes) == 4 * 5 * (8 + 2) + figures
    assert all(done and width > 0 for done, width in sizes)

    height, chrome = browser.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];")
    browser.set_window_size(1280, min(int(height) + int(chrome) + 20, 8000))  # the whole page
    png = browser.get_screenshot_as_png()
    browser.set_window_size(1280, 900)
    shot = Image.open(io.BytesIO(png)).convert("RGB")
    colours = shot.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 20  # text, tables and images, not blank
    assert max(shot.convert("L").getextrema()) - min(shot.convert("L").getextrema()) > 100
    keep = os.environ.get(SCREENSHOT_ENV)
    if keep:
        Path(keep).parent.mkdir(parents=True, exist_ok=True)
        Path(keep).write_bytes(png)
    assert console_errors() == []


def test_image_png_refuses_bad_shapes_and_values() -> None:
    from invbench.errors import DataError

    with pytest.raises(DataError, match="shape"):
        image_png(torch.zeros(2, 4, 4))
    with pytest.raises(DataError, match="NaN"):
        image_png(torch.full((1, 4, 4), float("nan")))
