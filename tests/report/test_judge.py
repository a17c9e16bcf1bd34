"""`invbench judge`: items, validation, the server, and judging in a real browser."""

from __future__ import annotations

import csv
import functools
import io
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from invbench.bench.store import Store
from invbench.cli import main
from invbench.errors import ConfigError
from invbench.metrics.human import human_rates, human_success, judge_accuracy
from invbench.report.judge import (
    JudgeSession,
    judge_page,
    judge_url,
    load_judge_cells,
    make_items,
    make_judge_server,
    parse_cells,
)


def _rows(out: Path) -> list[dict]:
    with Store(out / "invbench.sqlite") as store:
        return store.runs(kind="benchmark")


@pytest.fixture()
def served(store_copy):
    """A judging server on a free port over a copy of the session store (controls 1 in 2)."""
    cells = load_judge_cells(_rows(store_copy))
    session = JudgeSession(functools.partial(Store, store_copy / "invbench.sqlite"), cells,
                           controls=0.5, seed=3, judge="anonymous")
    server = make_judge_server(session, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield session, server, store_copy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_items_are_seeded_shuffled_and_their_controls_have_the_right_truth(bench_out) -> None:
    cells = load_judge_cells(_rows(bench_out))
    assert [c.run_id for c in cells] == [1, 2, 3, 4]
    items = make_items(cells, controls=0.25, seed=0)
    # 10 reconstructions per cell, round(10 * 0.25 / 0.75) = 3 controls per cell
    kinds = [it.kind for it in items]
    assert kinds.count("reconstruction") == 40 and len(items) == 52
    assert {"control-positive", "control-negative"} <= set(kinds)
    assert len({(it.run_id, it.item) for it in items}) == len(items)
    assert len({it.key for it in items}) == len(items)
    for it in items:
        t = next(c for c in cells if c.run_id == it.run_id).tensors
        if it.kind == "reconstruction":
            assert it.source == "images" and it.index == it.index_a
            assert int(t["labels"][it.index]) == it.claimed
        else:
            shown = int(t["heldout_labels"][it.index_a])
            assert it.index == -1 and it.source == "heldout_images"
            assert (shown == it.claimed) == (it.kind == "control-positive")
    assert make_items(cells, controls=0.25, seed=0) == items
    other = make_items(cells, controls=0.25, seed=1)
    assert [it.key for it in other] != [it.key for it in items]
    # interleaved: the first dozen items are not all of one cell or one kind
    assert len({it.run_id for it in items[:12]}) > 1
    assert len(make_items(cells, controls=0.0, seed=0)) == 40


def test_parse_cells_and_page() -> None:
    assert parse_cells(None) is None and parse_cells("3, 5,3") == [3, 5]
    for bad in ("x", "1,,y", " , "):
        with pytest.raises(ConfigError):
            parse_cells(bad)
    page = judge_page(judge="</script><b>")
    assert "</script><b>" not in page and "\\u003c/script>\\u003cb>" in page
    assert "http://" not in page and "https://" not in page


def test_old_cells_without_private_images_are_refused_in_one_line(tmp_path) -> None:
    rec = tmp_path / "old.safetensors"
    save_file({"images": torch.rand(2, 1, 8, 8), "labels": torch.tensor([0, 1])}, str(rec))
    rows = [{"id": 5, "status": "done", "result": {"kind": "inversion", "status": "done",
             "defense": "none", "attack": "gmi"}, "artifacts": {"reconstructions": str(rec)}}]
    with pytest.raises(ConfigError, match=r"^cell 5 \(none x gmi\) cannot be judged: it was "
                                          r"stored without private and held-out images"):
        load_judge_cells(rows, cell_ids=[5])
    with pytest.raises(ConfigError, match="no cells to judge"):
        load_judge_cells(rows)  # by default such cells are skipped; then nothing is left
    failed = [{"id": 6, "status": "failed", "result": {"kind": "inversion",
               "status": "failed", "defense": "none", "attack": "gmi"}, "artifacts": {}}]
    with pytest.raises(ConfigError, match="cell 6 .* failed"):
        load_judge_cells(failed, cell_ids=[6])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cells", "99"], "--cells: no benchmark cell with id 99"),
        (["--cells", "1,x"], "--cells must be comma-separated run ids"),
        (["--controls", "1"], "--controls must be in [0, 1)"),
        (["--controls", "-0.1"], "--controls must be in [0, 1)"),
        (["--host", "0.0.0.0"], "is not a loopback address"),
        (["--judge", " "], "--judge must be 1..64 printable characters"),
    ],
)
def test_judge_cli_bad_input_is_one_line(bench_out, capsys, args, message) -> None:
    code = main(["judge", "--out", str(bench_out), "--port", "0", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("invbench: error: ") and message in err


def test_judge_cli_missing_store_is_one_line(tmp_path, capsys) -> None:
    code = main(["judge", "--out", str(tmp_path), "--summary"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("invbench: error: no store at") and err.count("\n") == 1


def _http(url: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_server_api_stores_answers_and_refuses_bad_ones(served) -> None:
    session, server, out = served
    base = judge_url(server, judge="x").split("?")[0]
    assert base.startswith("http://127.0.0.1:")
    code, item = _http(base + "api/next?judge=api")
    assert code == 200 and item["done"] is False and item["a"].startswith("data:image/png")
    assert len(item["b"]) == 8 and "kind" not in item and "claimed" not in item
    assert item["progress"] == {"judge": "api", "answered": 0, "total": len(session.items)}
    assert _http(base + "api/answer", {"judge": "api", "key": item["key"],
                                       "answer": "maybe"})[0] == 400
    assert _http(base + "api/answer", {"judge": "api", "key": "nope", "answer": "yes"})[0] == 400
    code, res = _http(base + "api/answer", {"judge": "api", "key": item["key"], "answer": "no"})
    assert code == 200 and res["progress"]["answered"] == 1
    # answering again replaces; the next item is another one
    _http(base + "api/answer", {"judge": "api", "key": item["key"], "answer": "yes"})
    assert _http(base + "api/next?judge=api")[1]["key"] != item["key"]
    assert _http(base + "api/progress?judge=other")[1]["answered"] == 0
    assert _http(base + "nothing-here")[0] == 404
    with Store(out / "invbench.sqlite") as store:
        stored = store.judgements()
    it = session.by_key[item["key"]]
    assert [(j["judge"], j["run_id"], j["item"], j["kind"], j["answer"]) for j in stored] == [
        ("api", it.run_id, it.item, it.kind, "yes")]
    # when every item is answered the page is told it is done
    for other in session.items:
        session.answer("all", other.key, "no")
    code, last = _http(base + "api/next?judge=all")
    assert code == 200 and last["done"] is True
    assert last["progress"]["answered"] == last["progress"]["total"] == len(session.items)


def test_judge_cli_port_in_use_is_one_line(served, capsys) -> None:
    _, server, out = served
    port = server.server_address[1]
    code = main(["judge", "--out", str(out), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err


def test_judging_in_a_real_browser(served, browser, console_errors) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    session, server, out = served
    total = len(session.items)

    def ready(previous: str | None = None) -> str:
        def check(d):
            body = d.find_element(By.TAG_NAME, "body")
            key = body.get_attribute("data-key")
            return key if body.get_attribute("data-state") == "ready" and key != previous \
                else False

        return WebDriverWait(browser, 20).until(check)

    browser.get(judge_url(server, judge="tester"))
    key = ready()
    assert browser.find_element(By.ID, "judge").text == "tester"
    assert browser.find_element(By.ID, "progress").text == f"0 / {total}"
    assert "Is image A the same class/identity as the images in set B?" in browser.page_source
    images = browser.execute_script(
        "return Array.from(document.images).map(i => i.naturalWidth);")
    assert len(images) == 1 + 8 and all(w > 0 for w in images)

    keys = ["y", "n", "u", "y", "n", "y", "n"]
    answered = []
    for k in keys:
        ActionChains(browser).send_keys(k).perform()
        answered.append((key, {"y": "yes", "n": "no", "u": "unsure"}[k]))
        key = ready(previous=key)
    assert browser.find_element(By.ID, "progress").text == f"{len(keys)} / {total}"

    with Store(out / "invbench.sqlite") as store:
        stored = store.judgements()
        rates = human_rates(store)
    expected = [(session.by_key[k].run_id, session.by_key[k].item, session.by_key[k].kind, a)
                for k, a in answered]
    assert [(j["run_id"], j["item"], j["kind"], j["answer"]) for j in stored] == expected
    assert {j["judge"] for j in stored} == {"tester"}
    kinds = [kind for _, _, kind, _ in expected]
    assert "reconstruction" in kinds and any(k.startswith("control") for k in kinds)

    # reloading continues where the judge stopped: progress kept, answered items not shown
    browser.refresh()
    key = ready()
    assert browser.find_element(By.ID, "progress").text == f"{len(keys)} / {total}"
    assert key not in {k for k, _ in answered}

    # the rates from the stored answers match a hand count of what was pressed
    recon = [a for _, _, kind, a in expected if kind == "reconstruction"]
    yes, no = recon.count("yes"), recon.count("no")
    s = human_success(stored)
    assert (s.k, s.n, s.unsure) == (yes, yes + no, recon.count("unsure"))
    right = sum((kind == "control-positive" and a == "yes")
                or (kind == "control-negative" and a == "no") for _, _, kind, a in expected)
    decided = sum(kind.startswith("control") and a != "unsure" for _, _, kind, a in expected)
    acc = judge_accuracy(stored)
    assert (acc.k, acc.n) == (right, decided)
    assert rates["judge_accuracy"]["tester"]["k"] == right
    per_cell = {}
    for run_id, _, kind, a in expected:
        if kind == "reconstruction" and a != "unsure":
            k_n = per_cell.setdefault(run_id, [0, 0])
            k_n[0] += a == "yes"
            k_n[1] += 1
    for run_id, (k, n) in per_cell.items():
        assert (rates["cells"][run_id]["success"]["k"],
                rates["cells"][run_id]["success"]["n"]) == (k, n)
    assert console_errors() == []

    # the report shows the judging; --summary prints the same rates
    from invbench.report.html import render_report

    text = render_report(_rows(out), judgements=stored)
    assert 'id="human"' in text and "tester" in text
    assert main(["judge", "--out", str(out), "--summary", "--json"]) == 0


def test_judge_summary_json_matches_human_rates(served, capsys) -> None:
    session, _, out = served
    it = session.items[0]
    session.answer("zed", it.key, "yes")
    capsys.readouterr()
    assert main(["judge", "--out", str(out), "--summary", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["judges"] == ["zed"] and data["answers"] == 1
    assert main(["judge", "--out", str(out), "--summary"]) == 0
    assert "human success per attack" in capsys.readouterr().out


def test_runs_shows_the_human_rate_of_judged_cells_only(served, capsys) -> None:
    session, _, out = served
    recon = [it for it in session.items if it.kind == "reconstruction"]
    run_id = recon[0].run_id
    mine = [it for it in recon if it.run_id == run_id][:3]
    for it, answer in zip(mine, ("yes", "no", "yes"), strict=True):
        session.answer("zed", it.key, answer)
    capsys.readouterr()
    assert main(["runs", "--out", str(out), "--format", "csv"]) == 0
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    judged = rows.pop(str(run_id))
    assert int(judged["human_n"]) == 3 and float(judged["human_success"]) == pytest.approx(2 / 3)
    # the automatic success decision against these three answers, by hand
    said = {it.index: a for it, a in zip(mine, ("yes", "no", "yes"), strict=True)}
    with Store(out / "invbench.sqlite") as store:
        (row,) = [r for r in store.runs(kind="benchmark") if r["id"] == run_id]
    auto = load_file(row["artifacts"]["reconstructions"])["img_success"].tolist()
    fp = sum(1 for i, a in said.items() if a == "no" and auto[i])
    fn = sum(1 for i, a in said.items() if a == "yes" and not auto[i])
    assert float(judged["success_fp_rate"]) == pytest.approx(fp / 1)
    assert float(judged["success_fn_rate"]) == pytest.approx(fn / 2)
    assert rows and all(r["human_n"] == "" for r in rows.values())
    assert main(["runs", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "67% [" in table and "n=3" in table  # the judged cell's human success
