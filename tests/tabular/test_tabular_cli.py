"""`invbench tabular` and `invbench theory dp-bound`: JSON on stdout, store, bad input."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from invbench.bench.store import Store
from invbench.cli import main
from invbench.errors import InvbenchError
from invbench.tabular.cli import register
from invbench.theory import mi_privacy_loss_bound, min_epsilon_for_loss

FAST = ["--n", "300", "--repeats", "1", "--lam", "1", "--eps", "1000"]


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_tabular_json_plot_and_store(capsys, tmp_path):
    db = tmp_path / "store.sqlite"
    code, out, _ = _run(capsys, ["tabular", "--json", *FAST, "--out", str(tmp_path / "png"),
                                 "--store", str(db)])
    assert code == 0
    res = json.loads(out)  # exactly one JSON document on stdout
    assert out.strip().count("\n") == 0
    assert set(res) == {"dataset", "sensitive", "task", "baseline", "points"}
    assert [p["defense"] for p in res["points"]] == ["none", "mid", "dp-functional", "dp-sgd"]
    assert (tmp_path / "png" / "synthetic-vkorc1-regression.png").is_file()
    with Store(db) as store:
        rows = store.runs(kind="tabular")
    assert len(rows) == len(res["points"])


def _csv(tmp_path, text):
    p = tmp_path / "x.csv"
    p.write_text(text)
    return str(p)


GOOD = "dose,g,age\n" + "".join(f"{10 + i},{'a' if i % 2 else 'b'},{i}\n" for i in range(20))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--lam", "-1"], "--lam"),
        (["--eps", "0"], "--eps"),
        (["--eps", "-2"], "--eps"),
        (["--task", "forest"], "--task"),
        (["--dataset", "adult"], "--dataset"),
        (["--sensitive", "race"], "--sensitive"),
        (["--dataset", "csv", "--target", "dose", "--sensitive", "g"], "--csv"),
        (["--dataset", "csv", "--csv", "nope.csv", "--target", "dose", "--sensitive", "g"],
         "does not exist"),
        (["--dataset", "csv", "--csv", "{GOOD}", "--target", "weight", "--sensitive", "g"],
         "no target column 'weight'"),
        (["--dataset", "csv", "--csv", "{ONEVAL}", "--target", "dose", "--sensitive", "g"],
         "only one value"),
        (["--dataset", "csv", "--csv", "{NAN}", "--target", "dose", "--sensitive", "g"],
         "missing value"),
    ],
)
def test_tabular_bad_input_is_one_line_exit_2_nothing_stored(capsys, tmp_path, argv, match):
    files = {
        "{GOOD}": GOOD,
        "{ONEVAL}": GOOD.replace(",a,", ",b,"),
        "{NAN}": GOOD.replace("\n13,", "\nNaN,"),
    }
    argv = [_csv(tmp_path, files[a]) if a in files else a for a in argv]
    db = tmp_path / "store.sqlite"
    code, out, err = _run(capsys, ["tabular", *argv, "--store", str(db), "--out",
                                   str(tmp_path / "png")])
    assert code == 2
    assert out == ""
    assert err.startswith("invbench: error:") and err.count("\n") == 1
    assert match in err
    assert not db.exists() and not (tmp_path / "png").exists()


def test_register_on_a_fresh_app_raises_invbench_errors():
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["tabular", "--eps", "0"])
    assert result.exit_code != 0 and isinstance(result.exception, InvbenchError)


def test_theory_dp_bound(capsys):
    code, out, _ = _run(capsys, ["theory", "dp-bound", "--eps", "0.001", "--delta", "1e-6",
                                 "--n", "500", "--level", "0.3", "--json"])
    assert code == 0
    res = json.loads(out)
    assert res["bound"] == pytest.approx(mi_privacy_loss_bound(0.001, 1e-6, 500))
    assert res["max_epsilon_for_level"] == pytest.approx(min_epsilon_for_loss(0.3, 1e-6, 500))
    code, out, _ = _run(capsys, ["theory", "dp-bound", "--eps", "1", "--n", "100"])
    assert code == 0 and "bound" in out and "eps <=" in out
    code, out, err = _run(capsys, ["theory", "dp-bound", "--eps", "-1", "--n", "100"])
    assert code == 2 and out == "" and err.count("\n") == 1
