"""Write `invbench report` for a store and a PNG screenshot of it in headless Chromium.

    python benchmarks/report_screenshot.py --out DIR --png docs/img/report.png [--height 2400]

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``browser`` extra (selenium), as
the report tests do. The screenshot is the top ``--height`` pixels of the page at 1280 px
width (the results table, the trade-off plots, the first cells' grids). Prints one JSON line:
the report's path, the screenshot's path and size, and the console errors the page logged.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
#: no network, no sandbox, no GPU: the flags the report tests use too
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder holding invbench.sqlite")
    ap.add_argument("--png", type=Path, required=True, help="screenshot to write (.png)")
    ap.add_argument("--height", type=int, default=2400, help="pixels of the page to keep")
    args = ap.parse_args(argv)
    if args.png.suffix.lower() != ".png":
        ap.error(f"--png must end in .png, got '{args.png}'")
    if args.height < 200:
        ap.error(f"--height must be >= 200, got {args.height}")
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        ap.error(f"needs {', '.join(missing)} (apt-get install chromium chromium-driver)")

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from invbench.cli import main as invbench

    report = args.out / "report.html"
    if invbench(["report", "--out", str(args.out), "-o", str(report), "--quiet"]) != 0:
        return 1
    profile = tempfile.mkdtemp(prefix="invbench-shot-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size=1280,{args.height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(report.resolve().as_uri())
        png = driver.get_screenshot_as_png()
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    args.png.parent.mkdir(parents=True, exist_ok=True)
    args.png.write_bytes(png)
    sys.stdout.write(json.dumps({"report": str(report), "png": str(args.png),
                                 "bytes": len(png), "console_errors": errors}) + "\n")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
