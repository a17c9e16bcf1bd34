"""`invbench` end to end: JSON output, resume from the store, cache re-use, bad input."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from invbench.cli import main

FAST = [
    "--epochs",
    "6",
    "--per-label",
    "2",
    "--attack",
    "mi-face:steps=60",
    "--attack",
    "gmi:gan_steps=60,iterations=40,restarts=2",
    "--defense",
    "none",
    "--defense",
    "mid:beta=0.01",
]


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    import io
    from contextlib import redirect_stderr, redirect_stdout

    buf = io.StringIO()
    t0 = time.perf_counter()
    with redirect_stdout(buf), redirect_stderr(io.StringIO()):
        code = main(["run", "--json", "--out", str(out), *FAST])
    return out, code, buf.getvalue(), time.perf_counter() - t0


def test_run_json_is_one_array_with_the_documented_fields(first_run):
    out, code, stdout, _ = first_run
    assert code == 0
    results = json.loads(stdout)
    assert isinstance(results, list) and len(results) == 4
    for r in results:
        for key in (
            "dataset",
            "defense",
            "defense_params",
            "attack",
            "attack_params",
            "seed",
            "target_accuracy",
            "metrics",
            "references",
            "queries",
            "seconds",
        ):
            assert key in r, key
        for key in ("acc1", "acc5", "acc1_std", "knn_dist"):
            assert 0 <= r["metrics"][key] < float("inf")
        assert set(r["references"]) == {"private_test", "noise"}
        assert r["queries"] > 0
    by = {(r["defense"], r["attack"]): r for r in results}
    assert by[("none", "mi-face")]["target_accuracy"] > 0.9
    # Real held-out images are recognised; uniform noise is not.
    ref = results[0]["references"]
    assert ref["private_test"]["acc1"] > 0.8 and ref["noise"]["acc1"] < ref["private_test"]["acc1"]
    # The artifacts exist.
    for r in results:
        assert (out / "digits").exists()
        assert r["artifacts"]["grid"].endswith(".png")


def test_second_run_resumes_from_the_store(first_run, capsys):
    out, _, stdout, seconds = first_run
    t0 = time.perf_counter()
    code, out2, _ = _run(capsys, ["run", "--json", "--out", str(out), *FAST])
    again = time.perf_counter() - t0
    assert code == 0
    a, b = json.loads(stdout), json.loads(out2)
    assert all(r["cached"] for r in b)
    assert [r["metrics"] for r in a] == [r["metrics"] for r in b]
    assert again < 0.5 * seconds
    with sqlite3.connect(out / "invbench.sqlite") as conn:
        assert conn.execute("select count(*) from runs").fetchone()[0] == 4


def test_new_cell_reuses_cached_target_and_evaluator(first_run, capsys):
    out = first_run[0]
    cache_files = {p.name for p in (out / "cache").rglob("*.safetensors")}
    code, stdout, _ = _run(
        capsys,
        [
            "run",
            "--json",
            "--out",
            str(out),
            "--epochs",
            "6",
            "--per-label",
            "2",
            "--defense",
            "none",
            "--attack",
            "mi-face:steps=30",
        ],
    )
    assert code == 0 and json.loads(stdout)[0]["cached"] is False
    new = {p.name for p in (out / "cache").rglob("*.safetensors")} - cache_files
    assert new == set()  # same target, same evaluator: nothing retrained


def test_runs_command(first_run, capsys):
    code, stdout, _ = _run(capsys, ["runs", "--out", str(first_run[0]), "--json"])
    assert code == 0 and len(json.loads(stdout)) >= 4
    code, stdout, _ = _run(capsys, ["runs", "--out", str(first_run[0])])
    assert code == 0 and "done" in stdout


def test_list(capsys):
    code, stdout, _ = _run(capsys, ["list"])
    assert code == 0
    for name in (
        "digits",
        "mnist",
        "fashion-mnist",
        "image-folder",
        "mi-face",
        "gmi",
        "none",
        "mid",
        "accuracy",
        "knn",
    ):
        assert name in stdout


@pytest.mark.parametrize(
    "argv, match",
    [
        (["run", "--dataset", "nope"], "unknown dataset 'nope'"),
        (["run", "--attack", "nope"], "unknown attack 'nope'"),
        (["run", "--defense", "mid:beta=-1"], "The 'beta' parameter of defense 'mid' must be >= 0"),
        (["run", "--attack", "gmi:iterations=many"], "The 'iterations' parameter of attack 'gmi'"),
        (["run", "--dataset", "image-folder", "--data-dir", "/no/such"], "does not exist"),
        (["run", "--seed", "x"], "Invalid value for '--seed'"),
        (["run", "--bogus"], "No such option"),
        (["runs", "--out", "/no/such/place"], "no store at"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, argv, match):
    out = tmp_path / "out"
    code, stdout, err = _run(
        capsys, [*argv, "--out", str(out)] if argv[0] == "run" and "--bogus" not in argv else argv
    )
    assert code == 2
    assert stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and match in lines[0], err
    assert not (out / "invbench.sqlite").exists()


def test_empty_image_folder_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "faces").mkdir()
    code, _, err = _run(
        capsys,
        [
            "run",
            "--dataset",
            "image-folder",
            "--data-dir",
            str(tmp_path / "faces"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "faces" in err
    assert not (tmp_path / "o" / "invbench.sqlite").exists()


def test_yaml_config_with_flag_overrides(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "defenses: [none]\nattacks: [{mi-face: {steps: 5}}]\nper_label: 1\n"
        "train: {epochs: 1, batch_size: 128}\nevaluator: {epochs: 1}\n"
        "protocol: {test_fraction: 0.3}\n"
    )
    out = tmp_path / "o"
    code, stdout, _ = _run(
        capsys,
        ["run", "--config", str(spec), "--json", "--out", str(out), "--epochs", "2",
         "--private-class", "3", "--private-class", "8", "--public-class", "1"],
    )
    assert code == 0
    (r,) = json.loads(stdout)
    with sqlite3.connect(out / "invbench.sqlite") as conn:
        stored = json.loads(conn.execute("select spec_json from runs").fetchone()[0])
    assert stored["train"]["epochs"] == 2 and stored["train"]["batch_size"] == 128
    assert stored["protocol"]["private_classes"] == [3, 8]
    assert stored["protocol"]["public_classes"] == [1]
    assert r["attack_params"]["steps"] == 5


def test_budget_exhaustion_is_recorded_as_failed_and_retried_later(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["run", "--out", str(out), "--defense", "none", "--attack", "mi-face:steps=50",
            "--per-label", "1", "--epochs", "1", "--budget", "100", "--quiet"]
    code, stdout, err = _run(capsys, argv)
    assert code == 2 and "query budget of 100 exceeded" in err and stdout == ""
    with sqlite3.connect(out / "invbench.sqlite") as conn:
        assert conn.execute("select status from runs").fetchall() == [("failed",)]
    code, _, _ = _run(capsys, [*argv[:-3], "--budget", "1000", "--quiet"])
    assert code == 0
    with sqlite3.connect(out / "invbench.sqlite") as conn:
        statuses = sorted(r[0] for r in conn.execute("select status from runs"))
    assert statuses == ["done", "failed"]
