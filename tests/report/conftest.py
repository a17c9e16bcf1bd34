"""Fixtures of the report tests: one small benchmark store per session and a headless browser.

The store (digits, none + mid x mi-face + gmi, 2 reconstructions per class) is made once by
`invbench run` and shared by the HTML report and the judging tests; a test that writes to it
(judgements) works on a copy (:func:`store_copy`). The browser is a real headless Chromium
driven by selenium; its tests skip only where Chromium or ChromeDriver is not installed.
"""

from __future__ import annotations

import io
import shutil
import sqlite3
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

#: the flags Chromium needs on a machine without network (and without a sandbox or GPU)
CHROMIUM_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
)

#: small evaluators and references, as tests/test_cli.py: contracts, not quality
FAST_YAML = (
    "evaluator: {epochs: 8, robust: {epochs: 4}}\n"
    "references: {per_class: 20, adversarial: {steps: 20}}\n"
)
RUN_FLAGS = [
    "--epochs", "6", "--per-label", "2",
    "--attack", "mi-face:steps=60", "--attack", "gmi:gan_steps=60,iterations=40,restarts=2",
    "--defense", "none", "--defense", "mid:beta=0.01",
]


@pytest.fixture(scope="session")
def bench_out(tmp_path_factory) -> Path:
    """An ``--out`` folder with a 4-cell digits benchmark (about 1-2 min on a CPU, once)."""
    from invbench.cli import main

    out = tmp_path_factory.mktemp("report-runs")
    config = out / "fast.yaml"
    config.write_text(FAST_YAML)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
        code = main(["run", "--quiet", "--config", str(config), "--out", str(out), *RUN_FLAGS])
    assert code == 0, err.getvalue()
    return out


@pytest.fixture()
def store_copy(bench_out, tmp_path) -> Path:
    """A private ``--out`` folder whose store is a copy of :func:`bench_out`'s (artifacts are
    shared: their paths are absolute), for tests that write judgements."""
    out = tmp_path / "runs"
    out.mkdir()
    src = sqlite3.connect(bench_out / "invbench.sqlite")
    dst = sqlite3.connect(out / "invbench.sqlite")
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return out


def _browser_or_skip() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"browser tests need Chromium and ChromeDriver: {', '.join(missing)} "
                    "missing (apt-get install chromium chromium-driver)")


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (selenium) with its console log kept; quit at the end."""
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="invbench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture()
def console_errors(browser):
    """A function returning the browser console's SEVERE entries since this test began."""
    browser.get_log("browser")  # reading clears: start from an empty log

    def read() -> list[dict]:
        return [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]

    return read
