"""Fixtures of the report tests: one small benchmark store per session and a headless browser.

The store (digits, none + mid x mi-face + gmi, 2 reconstructions per class) is the session's
``digits_bench`` run (shared with tests/test_cli.py), copied as it was made, for the HTML
report and the judging tests; a test that writes to it
(judgements) works on a copy (:func:`store_copy`). The browser is a real headless Chromium
driven by selenium; its tests skip only where Chromium or ChromeDriver is not installed.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
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

def _copy_store(src_path: Path, out: Path) -> None:
    src, dst = sqlite3.connect(src_path), sqlite3.connect(out / "invbench.sqlite")
    with dst:
        src.backup(dst)
    src.close()
    dst.close()


@pytest.fixture(scope="session")
def bench_out(digits_bench, tmp_path_factory) -> Path:
    """An ``--out`` folder holding the session's 4-cell digits benchmark (tests/conftest.py's
    ``digits_bench``, run once for the CLI and the report tests): its store as the run left
    it; artifacts are shared (their paths are absolute)."""
    _, code, _, _, snapshot = digits_bench
    assert code == 0
    out = tmp_path_factory.mktemp("report-runs")
    _copy_store(snapshot, out)
    return out


@pytest.fixture()
def store_copy(bench_out, tmp_path) -> Path:
    """A private ``--out`` folder whose store is a copy of :func:`bench_out`'s (artifacts are
    shared: their paths are absolute), for tests that write judgements."""
    out = tmp_path / "runs"
    out.mkdir()
    _copy_store(bench_out / "invbench.sqlite", out)
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
