"""Tests for the SQLite results store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from invbench.bench.store import Store, spec_hash, versions
from invbench.cache import Cache
from invbench.errors import DataError

SPEC = {"dataset": "digits", "defense": {"name": "mid", "params": {"beta": 0.01}}, "seed": 0}
RESULT = {"dataset": "digits", "metrics": {"acc1": 0.6}, "target_accuracy": 0.95}
METRICS = {
    "attack": {"acc1": 0.6, "acc5": 0.9},
    "target": {"accuracy": 0.95},
    "noise": {"acc1": 0.2},
}


def _record(store: Store, spec: dict = SPEC, **kw) -> int:
    args = dict(
        spec_hash=spec_hash(spec), kind="run", spec=spec, result=RESULT, metrics=METRICS,
        artifacts={"grid": "runs/grid.png"}, seconds=2.5,
    )
    args.update(kw)
    return store.record(**args)


def _count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_spec_hash_and_versions() -> None:
    h = spec_hash(SPEC)
    assert len(h) == 64 and h == spec_hash(dict(reversed(list(SPEC.items()))))
    assert h != spec_hash({**SPEC, "seed": 1})
    # the cache's canonicaliser: tuples and lists hash alike
    assert spec_hash({"s": (1, 2)}) == spec_hash({"s": [1, 2]})
    v = versions()
    assert set(v) == {"python", "torch", "numpy", "invbench", "platform"}
    assert all(isinstance(x, str) and x for x in v.values())
    assert Cache.key(SPEC) != h  # cache keys also hash FORMAT_VERSION


def test_record_find_runs(tmp_path: Path) -> None:
    with Store(tmp_path / "db" / "runs.sqlite") as store:
        assert store.find(spec_hash(SPEC)) is None
        run_id = _record(store)
        assert store.find(spec_hash(SPEC)) == RESULT
        other = {**SPEC, "seed": 1}
        _record(store, other, kind="attack", result={"x": 1}, metrics={}, artifacts={})
        failed = {**SPEC, "seed": 2}
        _record(store, failed, status="failed", result={"error": "boom"}, metrics={})
        assert store.find(spec_hash(failed)) is None  # failed runs are never "found"

        rows = store.runs()
        assert [r["id"] for r in rows] == sorted(r["id"] for r in rows) and len(rows) == 3
        first = rows[0]
        assert first["id"] == run_id and first["status"] == "done" and first["kind"] == "run"
        assert first["spec"] == SPEC and first["result"] == RESULT
        assert first["metrics"] == {
            "attack.acc1": 0.6, "attack.acc5": 0.9, "target.accuracy": 0.95, "noise.acc1": 0.2
        }
        assert first["artifacts"] == {"grid": "runs/grid.png"}
        assert first["seconds"] == 2.5 and first["created"] <= first["finished"]
        assert first["versions"]["invbench"]
        assert [r["spec"]["seed"] for r in store.runs(kind="attack")] == [1]
        assert store.runs(kind="attack")[0]["metrics"] == {}
        assert store.runs(kind="nothing") == []


def test_rerecording_a_done_run_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        _record(store)
        new_id = _record(store, result={"v": 2}, metrics={"attack": {"acc1": 0.1}})
        assert store.find(spec_hash(SPEC)) == {"v": 2}
        rows = store.runs()
        assert len(rows) == 1 and rows[0]["id"] == new_id
        assert rows[0]["metrics"] == {"attack.acc1": 0.1}
    assert _count(path, "metrics") == 1 and _count(path, "artifacts") == 1  # old ones deleted


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_metric_writes_nothing(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "runs.sqlite"
    with Store(path) as store:
        # the NaN comes after the run row and other metrics were inserted: all are rolled back
        metrics = {"attack": {"acc1": 0.5, "acc5": 0.7}, "target": {"accuracy": bad}}
        with pytest.raises(ValueError, match="non-finite"):
            _record(store, metrics=metrics)
        assert store.runs() == [] and store.find(spec_hash(SPEC)) is None
    assert _count(path, "runs") == 0 and _count(path, "metrics") == 0


def test_failure_midway_keeps_the_replaced_run(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.sqlite") as store:
        _record(store)
        with pytest.raises(TypeError):  # fails at the artifacts, after the delete + inserts
            _record(store, result={"v": 2}, artifacts={"grid": 3})
        assert store.find(spec_hash(SPEC)) == RESULT
        assert len(store.runs()) == 1 and store.runs()[0]["metrics"]["attack.acc1"] == 0.6
        with pytest.raises(ValueError):
            _record(store, result={"acc": float("nan")})  # NaN in the payload, too
        with pytest.raises(ValueError, match="status"):
            _record(store, status="running")
        assert store.find(spec_hash(SPEC)) == RESULT


def test_wal_and_two_stores_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    a, b = Store(path), Store(path)
    try:
        assert a.journal_mode == "wal" and b.journal_mode == "wal"
        with sqlite3.connect(path) as raw:  # persisted in the file, not just the connection
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        _record(a)
        assert b.find(spec_hash(SPEC)) == RESULT
        _record(b, {**SPEC, "seed": 5})
        assert len(a.runs()) == 2
        # a reader holding an open read transaction does not block a writer (WAL)
        reader = sqlite3.connect(path)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM runs").fetchone()
        _record(a, {**SPEC, "seed": 6})
        assert reader.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2  # snapshot
        reader.rollback()
        reader.close()
        assert len(b.runs()) == 3
    finally:
        a.close()
        b.close()


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "runs.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DataError, match="runs.sqlite"):
        Store(bad)
    with pytest.raises(DataError, match="folder"):
        Store(tmp_path)


def test_concurrent_writers_wait_instead_of_failing(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "runs.sqlite"
    Store(path).close()
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            with Store(path, timeout=20) as store:  # own connection, like another process
                for i in range(15):
                    _record(store, {**SPEC, "seed": offset + i})
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k * 100,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store(path) as store:
        assert len(store.runs()) == 45
    assert _count(path, "metrics") == 45 * 4


# ---------------------------------------------------------------- human judgements


def _judge(store: Store, run_id: int, item: str = "r:0", **kw) -> int:
    args = dict(run_id=run_id, judge="ann", item=item, kind="reconstruction", index=0,
                claimed=3, answer="yes")
    args.update(kw)
    return store.record_judgement(**args)


def test_judgements_are_stored_filtered_and_replaced_on_a_second_answer(tmp_path) -> None:
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        a = _record(store)
        b = _record(store, {**SPEC, "seed": 1})
        first = _judge(store, a)
        _judge(store, a, "cp:3:1", kind="control-positive", index=-1, answer="no")
        _judge(store, b, judge="bob", answer="unsure")
        assert _judge(store, a, answer="no") == first  # same (run, judge, item): replaced
        rows = store.judgements()
        assert [(r["run_id"], r["judge"], r["item"], r["kind"], r["index"], r["claimed"],
                 r["answer"]) for r in rows] == [
            (a, "ann", "r:0", "reconstruction", 0, 3, "no"),
            (a, "ann", "cp:3:1", "control-positive", -1, 3, "no"),
            (b, "bob", "r:0", "reconstruction", 0, 3, "unsure"),
        ]
        assert all(r["created"] for r in rows)
        assert [r["item"] for r in store.judgements(run_id=a)] == ["r:0", "cp:3:1"]
        assert [r["run_id"] for r in store.judgements(judge="bob")] == [b]
        assert store.judgements(run_id=b, judge="ann") == []
    assert _count(db, "judgements") == 3


def test_bad_judgements_write_nothing_and_rerun_cells_drop_theirs(tmp_path) -> None:
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        run = _record(store)
        for bad in ({"answer": "maybe"}, {"kind": "control"}, {"judge": " "},
                    {"run_id": run + 99}):
            with pytest.raises(ValueError):
                _judge(store, **{"run_id": run, **bad})
        assert store.judgements() == []
        _judge(store, run)
        # re-recording the cell replaces its run (new images): the old answers go with it
        _record(store)
        assert store.judgements() == []
    assert _count(db, "judgements") == 0


def test_an_existing_store_gains_the_judgements_table(tmp_path) -> None:
    db = tmp_path / "old.sqlite"
    with Store(db) as store:
        run = _record(store)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE judgements")  # as written by an invbench without judging
    with Store(db) as store:
        assert store.judgements() == []
        _judge(store, run)
        assert len(store.judgements()) == 1
