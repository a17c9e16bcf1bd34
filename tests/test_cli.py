"""`invbench` end to end: JSON output, resume from the store, cache re-use, bad input."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
from conftest import FAST, FAST_YAML

from invbench.cli import main


def _fast_config(directory) -> str:
    path = directory / "fast.yaml"
    path.write_text(FAST_YAML)
    return str(path)


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def first_run(digits_bench):
    """The session's digits benchmark: (out, exit code, stdout, seconds)."""
    return digits_bench[:4]


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
        issue_keys = ("acc1 acc5 acc1_std knn_dist feat_dist fid kid precision recall density "
                      "coverage psnr ssim acc1_robust ensemble_acc1 agreement success success_lo "
                      "success_hi n_fid acc1_resnet acc1_vit").split()
        assert set(r["references"]) == {"private_test", "noise", "adversarial"}
        for scores in (r["metrics"], *r["references"].values()):
            for key in issue_keys:
                assert key in scores, key
                assert scores[key] is None or 0 <= scores[key] < float("inf") or key == "kid"
        assert r["metrics"]["fid"] is None  # 10 images < 64 robust features: undefined
        assert r["references"]["noise"]["fid"] is not None  # 100 images: defined
        assert isinstance(r["warnings"], list) and r["status"] == "done"
        assert r["queries"] > 0
    by = {(r["defense"], r["attack"]): r for r in results}
    assert by[("none", "mi-face")]["target_accuracy"] > 0.9
    # Real held-out images are recognised and verified; uniform noise is not.
    ref = results[0]["references"]
    assert ref["private_test"]["acc1"] > 0.8 and ref["noise"]["acc1"] < ref["private_test"]["acc1"]
    assert ref["private_test"]["success"] > 0.6 and ref["noise"]["success"] < 0.1
    assert ref["noise"]["success_lo"] <= ref["noise"]["success"] <= ref["noise"]["success_hi"]
    # The adversarial reference fools the standard evaluator more than noise does; the warning
    # names every rate metric that it fools by more than 10 points.
    for r in results:
        adv, noise = r["references"]["adversarial"], r["references"]["noise"]
        fooled = [k for k in ("acc1", "success") if adv[k] - noise[k] > 0.1]
        for k in fooled:
            assert any(w.startswith(f"{k} is fooled") for w in r["warnings"]), (k, r["warnings"])
    # The artifacts exist, with the per-image decisions beside the images.
    from safetensors.torch import load_file

    for r in results:
        assert r["artifacts"]["grid"].endswith(".png")
        stored = load_file(r["artifacts"]["reconstructions"])
        n = stored["images"].shape[0]
        for key in ("img_success", "img_robust_dist", "img_knn_dist", "img_vote_robust",
                    "img_psnr", "img_nearest"):
            assert stored[key].shape == (n,), key


def test_second_run_resumes_from_the_store(first_run, capsys):
    out, _, stdout, seconds = first_run
    t0 = time.perf_counter()
    code, out2, _ = _run(
        capsys, ["run", "--json", "--config", str(out / "fast.yaml"), "--out", str(out), *FAST]
    )
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
            "--config",
            str(out / "fast.yaml"),
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


def test_update_leaks_beats_chance_through_the_runner(first_run, capsys):
    """Single-sample label inference on digits beats chance: the runner updates the (cached)
    target with 20 held-out images, serves every version to the attack's worker, scores the
    inference against the true updates; a rerun reads the cell from the store and prints
    the updates' table."""
    out = first_run[0]
    argv = ["run", "--config", _fast_config(out), "--out", str(out), "--epochs", "6",
            "--per-label", "4", "--defense", "none",
            "--attack", "update-leaks:shadow_updates=300,attack_epochs=10,ae_epochs=2"]
    code, stdout, _ = _run(capsys, [*argv, "--json"])
    assert code == 0
    [r] = json.loads(stdout)
    assert r["status"] == "done" and r["kind"] == "update"
    m, base = r["metrics"], r["references"]["baseline"]
    assert r["updates"] == 20 and r["update_size"] == 1
    assert base["label_acc"] == pytest.approx(0.2)
    assert m["label_acc"] >= 0.45, m  # chance 0.2; 9 or more of 20 right by luck: p < 0.01
    assert r["queries"] == 100 * 21 and r["prepare_queries"] == 0
    assert set(m) >= {"update_mse", "update_ssim", "update_agreement", "label_kl"}
    code, stdout, _ = _run(capsys, argv)
    assert code == 0 and "attacks on the target's updates" in stdout
    assert f"{m['label_acc']:.2f} (0.20)" in stdout


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
        "success",
        "ensemble",
        "fid",
        "prdc",
        "pixel",
        "feat-dist",
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
        # the spec is built against the protocol's image shape before the store is opened
        (["run", "--resolution", "12", "--attack", "gmi"], "attack 'gmi' on digits (1, 12, 12)"),
        (["run", "--resolution", "30", "--attack", "mi-face"], "evaluator 'vit' on digits"),
        (["run", "--label", "7"], "labels [7] out of range"),
        (["run", "--attack", "gmi:iterations=true"], "must be of type int"),
        (["run", "--metrics", "success,bogus"], "unknown metric key 'bogus'"),
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
        "train: {epochs: 1, batch_size: 128}\nevaluator: {epochs: 1, robust: {epochs: 1}}\n"
        "references: {per_class: 5, adversarial: {steps: 2}}\n"
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


def test_failed_cell_is_recorded_the_run_goes_on_and_exits_non_zero(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "evaluator: {epochs: 1, robust: {epochs: 1}}\n"
        "references: {per_class: 5, adversarial: {steps: 2}}\n"
    )
    out = tmp_path / "o"
    argv = ["run", "--config", str(spec), "--out", str(out), "--defense", "none",
            "--attack", "mi-face:steps=50", "--attack", "mi-face:steps=2",
            "--per-label", "1", "--epochs", "1", "--budget", "100", "--quiet", "--json"]
    code, stdout, err = _run(capsys, argv)
    # the first cell runs out of queries (5 images x 50 steps > 100); the second still runs
    assert code == 1 and "query budget of 100 exceeded" in err
    first, second = json.loads(stdout)
    assert first["status"] == "failed" and "query budget" in first["error"]
    assert second["status"] == "done"
    with sqlite3.connect(out / "invbench.sqlite") as conn:
        assert sorted(conn.execute("select status from runs").fetchall()) == [
            ("done",), ("failed",)
        ]
    code, stdout, _ = _run(capsys, [*argv[:-4], "--budget", "1000", "--quiet", "--json"])
    assert code == 0  # with a larger budget the cell finishes (a new spec: both cells run)
    assert [r["status"] for r in json.loads(stdout)] == ["done", "done"]
    with sqlite3.connect(out / "invbench.sqlite") as conn:
        statuses = sorted(r[0] for r in conn.execute("select status from runs"))
    assert statuses == ["done", "done", "done", "failed"]


def test_method_error_mid_run_is_a_failed_cell(tmp_path, capsys, monkeypatch):
    from invbench.attacks.mi_face import MIFace

    def broken(self, *args, **kwargs):
        raise RuntimeError("attack 'mi-face' produced NaN/Inf images")

    monkeypatch.setattr(MIFace, "_invert", broken)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "evaluator: {epochs: 1, robust: {epochs: 1}}\n"
        "references: {per_class: 5, adversarial: {steps: 2}}\n"
    )
    code, stdout, err = _run(capsys, ["run", "--config", str(spec), "--out", str(tmp_path / "o"),
                                      "--defense", "none", "--attack", "mi-face", "--epochs",
                                      "1", "--per-label", "1", "--quiet"])
    assert code == 1 and "NaN/Inf" in err and "failed" in stdout


def test_metrics_option_picks_table_columns(first_run, capsys):
    out = first_run[0]
    code, stdout, _ = _run(capsys, ["run", "--config", str(out / "fast.yaml"), "--out", str(out),
                                    *FAST, "--metrics", "success,psnr,acc1_robust"])
    assert code == 0
    header = stdout.splitlines()[1]
    assert "psnr" in header and "acc1_robust" in header and "KNN" not in header
    code, _, err = _run(capsys, ["run", "--metrics", "nope", "--out", str(out)])
    assert code == 2 and "unknown metric key 'nope'" in err


def test_a_defense_report_reaches_the_row(first_run, capsys):
    pytest.importorskip("opacus")
    out, *_ = first_run  # evaluators come from this run's cache
    code, stdout, _ = _run(capsys, [
        "run", "--json", "-q", "--config", _fast_config(out), "--out", str(out),
        "--epochs", "2", "--per-label", "2", "--defense", "dp-sgd:epsilon=4",
        "--attack", "mi-face:steps=20",
    ])
    assert code == 0
    (row,) = json.loads(stdout)
    assert 3.0 < row["defense_epsilon"] <= 4.0 and row["defense_delta"] == 1e-5
    assert row["defense_noise_multiplier"] > 0


def _fisher_argv(out, *extra):
    return ["analyze", "fisher", "--config", str(out / "fast.yaml"), "--out", str(out),
            "--epochs", "6", "--per-label", "2", "--samples", "10", "-q", *extra]


def test_analyze_fisher_on_a_stored_cell(first_run, capsys):
    """The MID target of the run (cache) and its GMI reconstructions (store): table and PNG."""
    import numpy as np
    from PIL import Image

    out = first_run[0]
    cache_files = {p.name for p in (out / "cache").rglob("*.safetensors")}
    argv = _fisher_argv(out, "--defense", "mid:beta=0.01",
                        "--attack", "gmi:gan_steps=60,iterations=40,restarts=2")
    code, stdout, _ = _run(capsys, [*argv, "--json"])
    assert code == 0
    report = json.loads(stdout)
    assert report["target"] == "mid" and report["attack"].startswith("gmi")
    assert report["n_classification"] == 50 and report["n_inversion"] == 10
    names = [row["layer"] for row in report["layers"]]
    assert names[0] == "1 conv+bn" and names[-1].startswith("head")
    assert all(row["classification"] > 0 and row["inversion"] > 0 for row in report["layers"])
    assert sum(r["inversion_share"] for r in report["layers"]) == pytest.approx(1.0)
    with Image.open(report["plot"]) as img:
        assert img.size[0] > 600 and np.asarray(img.convert("L")).std() > 5
    assert {p.name for p in (out / "cache").rglob("*.safetensors")} == cache_files  # no training
    code, again, _ = _run(capsys, [*argv, "--json"])
    assert json.loads(again)["layers"] == report["layers"]  # seeded: the same numbers
    code, table, _ = _run(capsys, argv)
    assert code == 0 and "F inversion" in table and "head" in table


def test_analyze_fisher_on_a_users_model(first_run, tmp_path, capsys):
    """--model/--arch/--reconstructions: a user's own weights and a run's artifact."""
    stored = json.loads(first_run[2])
    rec = next(r for r in stored if r["defense"] == "none" and r["attack"] == "mi-face")
    from invbench.data import load_protocol
    from invbench.defenses import NoDefense, TrainConfig

    protocol = load_protocol("digits", seed=0)
    model = NoDefense().train(protocol, config=TrainConfig(epochs=1), seed=0)
    from safetensors.torch import save_file

    weights = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    plot = tmp_path / "fisher.svg"
    code, stdout, _ = _run(capsys, [
        "analyze", "fisher", "-q", "--json", "--model", str(weights), "--arch", "cnn-s",
        "--reconstructions", rec["artifacts"]["reconstructions"], "--samples", "5",
        "--plot", str(plot),
    ])
    assert code == 0
    report = json.loads(stdout)
    assert report["target"] == "mine.safetensors (cnn-s)" and report["n_inversion"] == 10
    assert plot.read_text().startswith("<?xml")
    # the same weights as the wrong architecture: one line naming the file
    code, _, err = _run(capsys, [
        "analyze", "fisher", "-q", "--model", str(weights), "--arch", "cnn-m",
        "--reconstructions", rec["artifacts"]["reconstructions"],
    ])
    assert code == 2 and "mine.safetensors" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--defense", "none", "--defense", "mid", "--attack", "mi-face"], "exactly one --defense"),
        (["--defense", "none"], "exactly one --attack"),
        (["--defense", "none", "--attack", "mi-face", "--plot", "x.txt"], "needs a suffix"),
        (["--model", "nope.safetensors"], "--model and --arch go together"),
        (["--model", "nope.safetensors", "--arch", "cnn-s"], "is not a file"),
        (["--defense", "none", "--attack", "mi-face", "--samples", "0"], "--samples must be"),
    ],
)
def test_analyze_fisher_bad_input_is_one_line(tmp_path, capsys, extra, match):
    out = tmp_path / "out"
    code, _, err = _run(capsys, ["analyze", "fisher", "--out", str(out), *extra])
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_analyze_fisher_without_a_stored_cell(first_run, capsys):
    out = first_run[0]
    code, _, err = _run(capsys, _fisher_argv(out, "--defense", "none",
                                             "--attack", "mi-face:steps=7"))
    assert code == 2 and "no finished cell none x mi-face(steps=7)" in err


@pytest.fixture
def random_search():
    """The test-only black-box attack, registered for the duration of one test."""
    from _probe_attacks import RandomSearch

    from invbench.registry import ATTACKS

    ATTACKS.register("random-search")(RandomSearch)
    yield RandomSearch
    ATTACKS._items.pop("random-search", None)


def test_a_black_box_cell_runs_its_attack_behind_the_barrier(first_run, capsys,
                                                             random_search):
    """The runner serves the target to the attack's worker: queries counted on its side."""
    out = first_run[0]
    code, stdout, _ = _run(capsys, [
        "run", "--json", "-q", "--config", str(out / "fast.yaml"), "--out", str(out),
        "--epochs", "6", "--per-label", "2", "--defense", "mid:beta=0.01",
        "--attack", "random-search:tries=5", "--output", "top-k:k=1", "--budget", "1000",
    ])
    assert code == 0
    (row,) = json.loads(stdout)
    assert row["status"] == "done" and row["queries"] == 5 * 5 * 2  # 5 labels x 2 x 5 tries
    assert row["prepare_queries"] == 0 and set(row["references"]) == {
        "private_test", "noise", "adversarial"}
    code, _, err = _run(capsys, [
        "run", "-q", "--config", str(out / "fast.yaml"), "--out", str(out), "--epochs", "6",
        "--per-label", "2", "--defense", "none", "--attack", "random-search:tries=7",
        "--budget", "20",
    ])
    assert code == 1 and "budget of 20 exceeded (0 used, 70 more asked)" in err


def test_serve_and_run_against_the_endpoint(first_run, capsys, random_search):
    """`invbench serve` in another process; `invbench run --target-url` attacks it."""
    import signal
    import subprocess
    import sys

    out = first_run[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "invbench.cli", "serve", "--config", str(out / "fast.yaml"),
         "--out", str(out), "--epochs", "6", "--defense", "none", "--port", "0", "--json",
         "-q", "--budget", "5000"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        assert info["url"].startswith("http://127.0.0.1:") and info["level"] == "black-box"
        assert info["target"] == "none" and info["budget"] == 5000
        code, stdout, _ = _run(capsys, [
            "run", "--json", "-q", "--config", str(out / "fast.yaml"), "--out", str(out),
            "--per-label", "2", "--target-url", info["url"],
            "--attack", "random-search:tries=3",
        ])
        assert code == 0
        (row,) = json.loads(stdout)
        assert row["defense"] == "endpoint" and row["queries"] == 30
        assert set(row["references"]) == {"private_test", "noise"}
        assert any("no adversarial reference" in w for w in row["warnings"])
        assert row["target_accuracy"] > 0.9  # the cached `none` target, through the endpoint
        for argv, match in (
            (["--attack", "mi-face"], "needs white-box access"),
            (["--attack", "random-search", "--defense", "mid"], "drop 'defenses'"),
        ):
            code, _, err = _run(capsys, ["run", "-q", "--out", str(out), "--target-url",
                                         info["url"], *argv])
            assert code == 2 and match in err
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
