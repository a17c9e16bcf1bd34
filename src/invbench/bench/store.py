"""Results store: one SQLite row per finished run, with its metrics and artifact paths.

Schema (stdlib :mod:`sqlite3`, WAL journal, foreign keys on, busy timeout)::

    runs(id, spec_hash, kind, status, spec_json, result_json,
         created, finished, seconds, versions_json)      -- spec_hash UNIQUE among 'done' runs
    metrics(run_id -> runs.id, scope, name, value)       -- scope: attack, private_test, noise,
                                                          --        target, ...
    artifacts(run_id -> runs.id, name, path)
    judgements(id, run_id -> runs.id, judge, item, kind, index, claimed, answer, created)
                                                          -- UNIQUE(run_id, judge, item)

:meth:`Store.record` writes a run with all its metrics and artifacts in ONE transaction, so a
killed sweep leaves each run either complete or absent, and a resumed sweep skips exactly the
runs :meth:`Store.find` reports as done. Re-recording a ``done`` run with the same
``spec_hash`` *replaces* it (its old metrics and artifacts rows are deleted with it) in that
same transaction. ``failed`` runs are kept as history and never returned by ``find``.

Several processes may open the same file: WAL lets readers run alongside the single writer,
and writers wait up to ``timeout`` seconds for each other instead of failing.

Example::

    store = Store("runs/invbench.sqlite")
    h = spec_hash(spec)
    if store.find(h) is None:
        store.record(spec_hash=h, kind="run", spec=spec, result=result,
                     metrics={"attack": {"acc1": 0.62}}, artifacts={}, seconds=12.5)
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from invbench._io import canonical_json, invbench_version, sha256_hex
from invbench.errors import DataError

#: Statuses a recorded run may have. Only ``done`` runs are found by :meth:`Store.find`.
STATUSES = ("done", "failed")
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    result_json TEXT NOT NULL,
    created TEXT NOT NULL,
    finished TEXT NOT NULL,
    seconds REAL NOT NULL,
    versions_json TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS runs_done_spec_hash ON runs(spec_hash) WHERE status = 'done';
CREATE INDEX IF NOT EXISTS runs_kind ON runs(kind);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, scope, name)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE IF NOT EXISTS judgements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    judge TEXT NOT NULL,
    item TEXT NOT NULL,
    kind TEXT NOT NULL,
    "index" INTEGER NOT NULL,
    claimed INTEGER NOT NULL,
    answer TEXT NOT NULL,
    created TEXT NOT NULL,
    UNIQUE (run_id, judge, item)
);
CREATE INDEX IF NOT EXISTS judgements_judge ON judgements(judge);
"""


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 (64 hex chars) of the canonical JSON of a resolved run spec.

    Uses the same canonicaliser as the cache keys (sorted keys, tuples as lists, Paths as
    strings); a non-JSON-able value raises ``TypeError``.
    """
    return sha256_hex(spec)


def versions() -> dict[str, str]:
    """Versions stored with every run: python, torch, numpy, invbench, platform."""
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "invbench": invbench_version(),
        "platform": platform.platform(),
    }


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _iso(t: _dt.datetime) -> str:
    return t.isoformat(timespec="seconds")


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # numpy / 0-d torch scalars
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} is {value}; refusing to store a non-finite metric")
    return value


class Store:
    """SQLite results store at ``path`` (created with its parent folder if missing).

    Args:
        path: database file; several processes may open it at once.
        timeout: seconds a writer waits for another writer's lock before failing.

    Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | Path, *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        if self.path.exists() and self.path.is_dir():
            raise DataError(f"results store {self.path} is a folder; expected a database file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the
        # write lock up front (and waits on busy_timeout) instead of failing on upgrade.
        self._conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # pragma: no cover - e.g. some network filesystems
                raise DataError(f"results store {self.path} cannot use WAL journaling ({mode})")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            with self._conn:
                self._conn.execute("BEGIN IMMEDIATE")
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._conn.execute(stmt)
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise DataError(
                f"results store {self.path} is not a usable SQLite file: {exc}"
            ) from None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    @property
    def journal_mode(self) -> str:
        """The SQLite journal mode in use (``"wal"``)."""
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # ------------------------------------------------------------------ writing

    def record(
        self,
        *,
        spec_hash: str,
        kind: str,
        spec: Mapping[str, Any],
        result: Mapping[str, Any],
        metrics: Mapping[str, Mapping[str, float]],
        artifacts: Mapping[str, str],
        seconds: float,
        status: str = "done",
    ) -> int:
        """Write one run, its metrics and its artifacts in a single transaction; return its id.

        Args:
            spec_hash: :func:`spec_hash` of ``spec`` (the resume key).
            kind: what ran (``"run"``, ``"attack"``, ``"train"``, ``"audit"``...).
            spec: the full resolved spec (JSON-able).
            result: the result payload returned later by :meth:`find` (JSON-able, finite).
            metrics: ``{scope: {name: value}}``, e.g. ``{"attack": {"acc1": 0.6}}``.
            artifacts: ``{name: path}`` of files the run wrote (grids, checkpoints).
            seconds: wall time of the run; ``created`` is stored as finish time - seconds.
            status: ``"done"`` or ``"failed"``.

        A ``done`` run replaces an earlier ``done`` run with the same ``spec_hash``. A NaN or
        infinite metric (or result value) raises ``ValueError`` and nothing is written, not
        even a partial run; a replaced run then also stays as it was.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if not isinstance(spec_hash, str) or not spec_hash:
            raise ValueError("spec_hash must be a non-empty string")
        seconds = _finite(seconds, "seconds")
        finished = _now()
        created = finished - _dt.timedelta(seconds=max(seconds, 0.0))
        spec_text = canonical_json(spec)
        versions_text = canonical_json(versions())
        conn = self._conn
        with conn:  # commits on success, rolls back everything on any exception
            conn.execute("BEGIN IMMEDIATE")
            if status == "done":
                conn.execute(
                    "DELETE FROM runs WHERE spec_hash = ? AND status = 'done'", (spec_hash,)
                )
            cur = conn.execute(
                "INSERT INTO runs(spec_hash, kind, status, spec_json, result_json, created,"
                " finished, seconds, versions_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spec_hash,
                    kind,
                    status,
                    spec_text,
                    canonical_json(result),
                    _iso(created),
                    _iso(finished),
                    seconds,
                    versions_text,
                ),
            )
            run_id = int(cur.lastrowid)
            for scope, values in metrics.items():
                for name, value in values.items():
                    conn.execute(
                        "INSERT INTO metrics(run_id, scope, name, value) VALUES (?, ?, ?, ?)",
                        (run_id, str(scope), str(name), _finite(value, f"metric {scope}.{name}")),
                    )
            for name, path in artifacts.items():
                if not isinstance(path, (str, Path)):
                    raise TypeError(f"artifact '{name}' path must be a str or Path")
                conn.execute(
                    "INSERT INTO artifacts(run_id, name, path) VALUES (?, ?, ?)",
                    (run_id, str(name), str(path)),
                )
        return run_id

    # ------------------------------------------------------------------ reading

    def find(self, spec_hash: str) -> dict[str, Any] | None:
        """The result payload of the finished (``done``) run with this hash, else ``None``."""
        row = self._conn.execute(
            "SELECT result_json FROM runs WHERE spec_hash = ? AND status = 'done'", (spec_hash,)
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def runs(self, *, kind: str | None = None) -> list[dict[str, Any]]:
        """All recorded runs, oldest first (optionally only one ``kind``).

        Each is a dict with ``id, kind, status, spec_hash, created, finished, seconds, spec,
        result, versions``, ``metrics`` flattened as ``{"scope.name": value}`` and
        ``artifacts`` as ``{name: path}``.
        """
        where, args = ("WHERE kind = ?", (kind,)) if kind is not None else ("", ())
        rows = self._conn.execute(
            "SELECT id, kind, status, spec_hash, created, finished, seconds, spec_json,"
            f" result_json, versions_json FROM runs {where} ORDER BY id",
            args,
        ).fetchall()
        out: dict[int, dict[str, Any]] = {}
        for r in rows:
            out[r[0]] = {
                "id": r[0],
                "kind": r[1],
                "status": r[2],
                "spec_hash": r[3],
                "created": r[4],
                "finished": r[5],
                "seconds": r[6],
                "spec": json.loads(r[7]),
                "result": json.loads(r[8]),
                "versions": json.loads(r[9]),
                "metrics": {},
                "artifacts": {},
            }
        if not out:
            return []
        join = f"JOIN runs ON runs.id = t.run_id {where.replace('kind', 'runs.kind')}"
        for run_id, scope, name, value in self._conn.execute(
            f"SELECT t.run_id, t.scope, t.name, t.value FROM metrics t {join}"
            " ORDER BY t.run_id, t.scope, t.name",
            args,
        ):
            out[run_id]["metrics"][f"{scope}.{name}"] = value
        for run_id, name, path in self._conn.execute(
            f"SELECT t.run_id, t.name, t.path FROM artifacts t {join} ORDER BY t.run_id, t.name",
            args,
        ):
            out[run_id]["artifacts"][name] = path
        return list(out.values())

    # ------------------------------------------------------------------ human judgements

    def record_judgement(
        self,
        *,
        run_id: int,
        judge: str,
        item: str,
        kind: str,
        index: int,
        claimed: int,
        answer: str,
    ) -> int:
        """Store one human answer (``invbench judge``) in one transaction; return its row id.

        Args:
            run_id: the benchmark cell (a ``runs`` id) the item comes from.
            judge: who answered (a non-empty name).
            item: the item's id within the cell (e.g. ``"r:3"``, ``"cp:2:5"``).
            kind: ``"reconstruction"``, ``"control-positive"`` or ``"control-negative"``.
            index: the reconstruction's index in the cell's tensors, ``-1`` for a control.
            claimed: the class the item claims (set B's class).
            answer: ``"yes"``, ``"no"`` or ``"unsure"``.

        Answering the same ``(run_id, judge, item)`` again replaces the earlier answer. An
        unknown run id, kind or answer raises ``ValueError`` and nothing is written. When
        :meth:`record` replaces a ``done`` run (the cell was rerun: new images), that run's
        judgements are deleted with it.
        """
        from invbench.metrics.human import ANSWERS, KINDS

        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
        if not isinstance(judge, str) or not judge.strip():
            raise ValueError("judge must be a non-empty string")
        if not isinstance(item, str) or not item:
            raise ValueError("item must be a non-empty string")
        conn = self._conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)).fetchone() is None:
                raise ValueError(f"no run with id {run_id} in {self.path}")
            conn.execute(
                'INSERT INTO judgements(run_id, judge, item, kind, "index", claimed, answer,'
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(run_id, judge, item) DO UPDATE SET kind = excluded.kind,"
                ' "index" = excluded."index", claimed = excluded.claimed,'
                " answer = excluded.answer, created = excluded.created",
                (int(run_id), judge, item, kind, int(index), int(claimed), answer,
                 _iso(_now())),
            )
            row = conn.execute(
                "SELECT id FROM judgements WHERE run_id = ? AND judge = ? AND item = ?",
                (int(run_id), judge, item),
            ).fetchone()
        return int(row[0])

    def judgements(
        self, *, run_id: int | None = None, judge: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored human answers, oldest first, optionally of one run and/or one judge.

        Each is a dict with ``id, run_id, judge, item, kind, index, claimed, answer, created``.
        """
        where, args = [], []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(int(run_id))
        if judge is not None:
            where.append("judge = ?")
            args.append(judge)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._conn.execute(
            'SELECT id, run_id, judge, item, kind, "index", claimed, answer, created'
            f" FROM judgements {clause} ORDER BY id",
            args,
        ).fetchall()
        keys = ("id", "run_id", "judge", "item", "kind", "index", "claimed", "answer", "created")
        return [dict(zip(keys, r, strict=True)) for r in rows]
