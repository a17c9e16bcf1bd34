"""`invbench sweep`: the same numbers from a local pool and a Ray cluster; SIGKILL and resume.

One small digits grid (2 defenses x 2 seeds x MI-Face, small evaluators) runs three times
into fresh folders: through a 2-process pool, through a Ray cluster started on loopback with
2 CPUs, and killed with SIGKILL mid-run then resumed. Each must give every cell once, with
the pool's numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from invbench.cli import main

SWEEP = """\
dataset: digits
seeds: [0, 1]
threads: 1
train: {epochs: 3}
evaluator: {epochs: 4, robust: {epochs: 2}}
references: {per_class: 8, adversarial: {steps: 8}}
labels: [0, 1]
per_label: 2
defenses: [none, {mid: {beta: {grid: [0.1]}}}]
attacks: [{mi-face: {steps: 30}}]
"""


def _write_spec(directory: Path) -> Path:
    path = directory / "sweep.yaml"
    path.write_text(SWEEP)
    return path


def _cli(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _numbers(rows) -> dict[tuple[str, int], dict]:
    return {(r["defense_label"], r["seed"]): {"metrics": r["metrics"],
                                              "acc": r["target_accuracy"]} for r in rows}


def _store_counts(out: Path) -> tuple[dict[str, int], str]:
    con = sqlite3.connect(out / "invbench.sqlite")
    try:
        rows = con.execute("SELECT spec_hash, COUNT(*) FROM runs WHERE status = 'done' "
                           "GROUP BY spec_hash").fetchall()
        ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    return dict(rows), ok


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory):
    """The grid through a local pool of 2 processes (the reference numbers)."""
    d = tmp_path_factory.mktemp("pool")
    spec = _write_spec(d)
    import io
    from contextlib import redirect_stderr, redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf), redirect_stderr(io.StringIO()):
        code = main(["sweep", str(spec), "--workers", "2", "--out", str(d / "out"), "--json"])
    return d, code, json.loads(buf.getvalue())


def test_pool_runs_every_cell_once(pool_sweep):
    d, code, rows = pool_sweep
    assert code == 0
    assert len(rows) == 4 and all(r["status"] == "done" for r in rows)
    assert {(r["defense"], r["seed"]) for r in rows} == {
        (x, s) for x in ("none", "mid") for s in (0, 1)}
    counts, ok = _store_counts(d / "out")
    assert ok == "ok" and len(counts) == 4 and set(counts.values()) == {1}
    # the strong MID target is the less accurate one on both seeds
    acc = {(r["defense"], r["seed"]): r["target_accuracy"] for r in rows}
    assert all(acc[("mid", s)] < acc[("none", s)] for s in (0, 1))


def test_rerun_runs_nothing_and_returns_the_stored_rows(pool_sweep, capsys):
    d, _, rows = pool_sweep
    code, out, err = _cli(capsys, ["sweep", str(d / "sweep.yaml"), "--out", str(d / "out"),
                                   "--json"])
    again = json.loads(out)
    assert code == 0 and all(r["cached"] for r in again)
    assert _numbers(again) == _numbers(rows)
    assert "4 in the store, 0 to run" in " ".join(err.split())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_ray_cluster_gives_the_pools_numbers(pool_sweep, tmp_path, capsys):
    pytest.importorskip("ray")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    temp = Path("/tmp") / f"rt{os.getpid()}"  # short: Ray's socket paths have a length limit
    start = subprocess.run(
        [str(ray_bin), "start", "--head", "--num-cpus", "2", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", str(temp)],
        env=env, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        spec = _write_spec(tmp_path)
        code, out, _ = _cli(capsys, ["sweep", str(spec), "--backend", "ray", "--address",
                                     f"127.0.0.1:{port}", "--out", str(tmp_path / "out"),
                                     "--json", "-q"])
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
    assert code == 0
    rows = json.loads(out)
    assert _numbers(rows) == _numbers(pool_sweep[2])
    counts, ok = _store_counts(tmp_path / "out")
    assert ok == "ok" and set(counts.values()) == {1} and len(counts) == 4


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_completes_every_cell_once(pool_sweep, tmp_path, capsys):
    spec = _write_spec(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from invbench.cli import _entry; _entry()", "sweep",
           str(spec), "--workers", "2", "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    done_at_kill = 0
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "invbench.sqlite").exists():
                try:
                    counts, _ = _store_counts(out)
                except sqlite3.OperationalError:  # schema not created yet
                    counts = {}
                if counts:
                    done_at_kill = len(counts)
                    break
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool, mid-sweep
    finally:
        proc.wait(timeout=60)
    assert 1 <= done_at_kill < 4, f"the kill came at {done_at_kill} of 4 cells"
    counts, ok = _store_counts(out)
    assert ok == "ok" and len(counts) < 4

    code, text, err = _cli(capsys, ["sweep", str(spec), "--out", str(out), "--json"])
    assert code == 0
    left = 4 - len(counts)
    assert f"{len(counts)} in the store, {left} to run" in " ".join(err.split())
    assert f"[{left}/{left}]" in err and "target accuracy" in err  # one line per cell
    rows = json.loads(text)
    assert _numbers(rows) == _numbers(pool_sweep[2])
    counts, ok = _store_counts(out)
    assert ok == "ok" and len(counts) == 4 and set(counts.values()) == {1}


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--backend", "spark"], "--backend must be one of"),
        (["--backend", "ray"], "--backend ray needs --address"),
        (["--address", "127.0.0.1:1"], "--address is for --backend ray"),
        (["--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_bad_backend_options_are_one_line_before_any_work(tmp_path, capsys, argv, needle):
    spec = _write_spec(tmp_path)
    code, _, err = _cli(capsys, ["sweep", str(spec), "--out", str(tmp_path / "o"), *argv])
    assert code == 2 and needle in err and not (tmp_path / "o").exists()


def test_a_bad_grid_value_writes_nothing(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SWEEP.replace("grid: [0.1]", "grid: [0.1, -2]"))
    code, _, err = _cli(capsys, ["sweep", str(spec), "--out", str(tmp_path / "o")])
    assert code == 2 and "beta=-2" in err and not (tmp_path / "o").exists()
