"""Human judging of reconstructions in the browser (``invbench judge``).

Protocol of Ho et al., "Revisiting Model Inversion Evaluation" (2025, arXiv 2505.03519): a
person sees one item at a time — image A beside a set B of private training images of one
class — and answers *Is image A the same class/identity as the images in set B?* with
``yes``, ``no`` or ``unsure`` (keys y / n / u). Items are

* one per reconstruction of every judged cell (A = the reconstruction, B = private
  training images of its claimed class), kind ``reconstruction``;
* controls with a known truth, mixed in at the ``controls`` share of all items: a held-out
  private test image of the class of B (``control-positive``, truth yes) or of another
  attacked class (``control-negative``, truth no). They measure the judge.

Items are drawn with a seed and shuffled together, so reconstructions and controls are
interleaved and a judge cannot tell them apart. The page is served from this machine
(loopback only, stdlib :class:`~http.server.ThreadingHTTPServer`): it fetches the next item
as JSON (images inline as base64 PNGs), posts each answer as JSON, and the server writes it
to the results store at once (:meth:`~invbench.bench.store.Store.record_judgement`), so
closing the browser loses nothing and reopening continues with the items this judge has not
answered. Rates: :mod:`invbench.metrics.human`.

Routes: ``GET /`` (the page; self-contained HTML, CSS and script), ``GET /api/next?judge=``,
``POST /api/answer`` (``{"judge", "key", "answer"}``), ``GET /api/progress?judge=``.

Example::

    rows = store.runs(kind="benchmark")
    session = JudgeSession(functools.partial(Store, store.path), load_judge_cells(rows),
                           controls=0.25, seed=0)
    server = make_judge_server(session, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(judge_url(server, judge="alice"))
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from rich.table import Table

from invbench.errors import ConfigError, DataError
from invbench.metrics.human import (
    ANSWERS,
    CONTROL_NEGATIVE,
    CONTROL_POSITIVE,
    RECONSTRUCTION,
)
from invbench.report.html import (
    data_url,
    has_judging_images,
    image_png,
    load_cell_tensors,
    page,
    row_parts,
)
from invbench.report.tables import fmt_rate, fmt_ratio

#: the default port of ``invbench judge`` (``invbench serve`` uses 8765)
DEFAULT_PORT = 8766
#: longest judge name accepted
MAX_JUDGE_NAME = 64
#: largest POST body accepted (an answer is a few dozen bytes)
MAX_BODY = 4096


def check_judge_name(name: str) -> str:
    """``name`` stripped, if it is a usable judge name (1..64 printable characters)."""
    name = str(name).strip()
    if not name or len(name) > MAX_JUDGE_NAME or not name.isprintable():
        raise ConfigError(f"--judge must be 1..{MAX_JUDGE_NAME} printable characters, "
                          f"got {name!r}")
    return name


def check_controls(controls: float) -> float:
    """``controls`` if it is a share of items in [0, 1)."""
    if not isinstance(controls, (int, float)) or not 0 <= float(controls) < 1:
        raise ConfigError(f"--controls must be in [0, 1) (the share of items that are "
                          f"controls), got {controls}")
    return float(controls)


def parse_cells(text: str | None) -> list[int] | None:
    """``"3,5, 7"`` -> ``[3, 5, 7]`` (store run ids, duplicates dropped); ``None`` -> all."""
    if text is None:
        return None
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ConfigError(f"--cells must be comma-separated run ids (see `invbench runs`), "
                              f"got '{part}'") from None
        if value not in out:
            out.append(value)
    if not out:
        raise ConfigError("--cells: give at least one run id (see `invbench runs`)")
    return out


@dataclass(frozen=True)
class JudgeCell:
    """A benchmark cell ready to judge: its run id, a label, and its stored tensors."""

    run_id: int
    label: str
    tensors: Mapping[str, Any]

    @property
    def labels(self) -> list[int]:
        """The claimed class of each reconstruction."""
        return [int(v) for v in self.tensors["labels"].tolist()]


def _cell_label(result: Mapping[str, Any]) -> str:
    return (f"{result.get('defense_label') or result.get('defense')} x "
            f"{result.get('attack_label') or result.get('attack')}")


def load_judge_cells(
    rows: Sequence[Mapping[str, Any]],
    *,
    cell_ids: Sequence[int] | None = None,
    quiet: bool = True,
) -> list[JudgeCell]:
    """The cells to judge, validated, with their tensors loaded.

    Args:
        rows: ``Store.runs(kind="benchmark")``.
        cell_ids: run ids to judge; ``None``: every done inversion cell (cells stored without
            private images are then skipped with a note on stderr).
        quiet: no notes.

    Raises :class:`~invbench.errors.ConfigError` (one line) for an unknown id, a failed or
    update-attack cell, a cell whose reconstructions file is missing or was written without
    the private and held-out images (an older invbench), or when nothing is left to judge.
    """
    from invbench.progress import log

    by_id = {}
    for row in rows:
        run_id, result, artifacts = row_parts(row)
        if run_id is not None:
            by_id[run_id] = (result, artifacts)
    explicit = cell_ids is not None
    if cell_ids is None:
        cell_ids = [i for i, (r, _) in by_id.items()
                    if r.get("status") == "done" and r.get("kind") != "update"]
    cells: list[JudgeCell] = []
    for run_id in cell_ids:
        if run_id not in by_id:
            raise ConfigError(f"--cells: no benchmark cell with id {run_id} in the store "
                              "(`invbench runs` lists them)")
        result, artifacts = by_id[run_id]
        name = _cell_label(result)
        if result.get("kind") == "update":
            raise ConfigError(f"cell {run_id} ({name}) attacks a model's updates; only "
                              "inversion cells have images to judge")
        if result.get("status") != "done":
            raise ConfigError(f"cell {run_id} ({name}) failed; only done cells can be judged")
        path = artifacts.get("reconstructions")
        tensors = load_cell_tensors(path)
        problem = None
        if tensors is None:
            problem = f"its reconstructions file {path} is missing"
        elif not has_judging_images(tensors):
            problem = ("it was stored without private and held-out images (an older "
                       "invbench); rerun the cell to judge it")
        if problem is not None:
            if explicit:
                raise ConfigError(f"cell {run_id} ({name}) cannot be judged: {problem}")
            log(f"[yellow]note:[/] skipping cell {run_id} ({name}): {problem}", quiet=quiet)
            continue
        assert tensors is not None
        private = {int(v) for v in tensors["private_labels"].tolist()}
        missing = sorted({int(v) for v in tensors["labels"].tolist()} - private)
        if missing:
            raise DataError(f"cell {run_id} ({name}) has no private images of class(es) "
                            f"{missing}; rerun the cell")
        cells.append(JudgeCell(run_id=run_id, label=name, tensors=tensors))
    if not cells:
        raise ConfigError("no cells to judge: run `invbench run` (this invbench stores the "
                          "private images judging needs) and pass its --out")
    return cells


@dataclass(frozen=True)
class Item:
    """One question: image A (``source[index_a]`` of cell ``run_id``) against set B of class
    ``claimed``; ``item`` is its id within the cell, ``index`` the reconstruction's (-1 for
    controls)."""

    run_id: int
    item: str
    kind: str
    index: int
    claimed: int
    source: str
    index_a: int

    @property
    def key(self) -> str:
        """An opaque, stable token for the page (it does not reveal the kind)."""
        return hashlib.sha256(f"{self.run_id}/{self.item}".encode()).hexdigest()[:16]


def make_items(cells: Sequence[JudgeCell], *, controls: float = 0.25, seed: int = 0
               ) -> list[Item]:
    """Every cell's reconstruction items plus controls, shuffled together with ``seed``.

    Per cell, ``round(n * controls / (1 - controls))`` controls for ``n`` reconstructions
    (so controls are about ``controls`` of all items), half positive and half negative (an
    odd one drawn with the seed; all positive when the cell attacked a single class), each a
    distinct held-out image drawn with the seed. The same cells, share and seed always give
    the same items in the same order.
    """
    check_controls(controls)
    items: list[Item] = []
    for cell in cells:
        rng = random.Random(f"invbench-judge:{seed}:{cell.run_id}")
        labels = cell.labels
        for i, c in enumerate(labels):
            items.append(Item(cell.run_id, f"r:{i}", RECONSTRUCTION, i, c, "images", i))
        n_controls = round(len(labels) * controls / (1 - controls))
        if not n_controls:
            continue
        classes = sorted(set(labels))
        held = [int(v) for v in cell.tensors["heldout_labels"].tolist()]
        pos = [(c, j) for j, c in enumerate(held) if c in classes]
        neg = [(c, j) for c in classes for j, h in enumerate(held) if h != c]
        rng.shuffle(pos)
        rng.shuffle(neg)
        n_pos = n_controls // 2 + int(n_controls % 2 == 1 and rng.random() < 0.5)
        if not neg:
            n_pos = n_controls
        used: set[int] = set()  # each held-out image once per cell
        for kind, pairs, want in ((CONTROL_POSITIVE, pos, n_pos),
                                  (CONTROL_NEGATIVE, neg, n_controls - n_pos)):
            prefix = "cp" if kind == CONTROL_POSITIVE else "cn"
            for c, j in pairs:
                if want <= 0:
                    break
                if j in used:
                    continue
                used.add(j)
                want -= 1
                items.append(Item(cell.run_id, f"{prefix}:{c}:{j}", kind, -1, c,
                                  "heldout_images", j))
    random.Random(f"invbench-judge:{seed}").shuffle(items)
    return items


class JudgeSession:
    """The items of a judging session and the store their answers go to.

    Thread-safe: each request opens the store for itself (SQLite connections stay in their
    thread), under a lock, so answers from several tabs or judges are never interleaved.

    Args:
        open_store: returns the results store, freshly opened, as a context manager
            (``functools.partial(Store, "OUT/invbench.sqlite")``); called once per request.
        cells: :func:`load_judge_cells`.
        controls: share of control items in [0, 1).
        seed: draws the controls and the order.
        judge: the default judge name of the page (a page URL's ``?judge=`` overrides it).
    """

    def __init__(self, open_store: Callable[[], Any], cells: Sequence[JudgeCell], *,
                 controls: float = 0.25, seed: int = 0, judge: str = "anonymous") -> None:
        self._store = open_store
        self.cells = {c.run_id: c for c in cells}
        self.judge = check_judge_name(judge)
        self.items = make_items(cells, controls=controls, seed=seed)
        self.by_key = {it.key: it for it in self.items}
        self._lock = threading.Lock()
        self._png: dict[tuple[int, str, int], str] = {}

    def _answered(self, store: Any, judge: str) -> set[tuple[int, str]]:
        return {(int(j["run_id"]), str(j["item"])) for j in store.judgements(judge=judge)}

    def _progress(self, answered: set[tuple[int, str]]) -> dict[str, int]:
        done = sum((it.run_id, it.item) in answered for it in self.items)
        return {"answered": done, "total": len(self.items)}

    def _image(self, run_id: int, source: str, index: int) -> str:
        key = (run_id, source, index)
        if key not in self._png:
            self._png[key] = data_url(image_png(self.cells[run_id].tensors[source][index]))
        return self._png[key]

    def progress(self, judge: str) -> dict[str, Any]:
        """``{"judge", "answered", "total"}`` of this session's items for ``judge``."""
        judge = check_judge_name(judge)
        with self._lock, self._store() as store:
            return {"judge": judge, **self._progress(self._answered(store, judge))}

    def next_item(self, judge: str) -> dict[str, Any]:
        """The first item ``judge`` has not answered, as the page's JSON, or ``done: true``.

        ``{"done": false, "key", "a": data URL, "b": [data URLs], "progress"}``; the kind,
        cell and class are not sent (the judge must not know them).
        """
        judge = check_judge_name(judge)
        with self._lock, self._store() as store:
            answered = self._answered(store, judge)
            progress = {"judge": judge, **self._progress(answered)}
            for it in self.items:
                if (it.run_id, it.item) in answered:
                    continue
                t = self.cells[it.run_id].tensors
                set_b = [i for i, y in enumerate(t["private_labels"].tolist())
                         if int(y) == it.claimed]
                return {"done": False, "key": it.key,
                        "a": self._image(it.run_id, it.source, it.index_a),
                        "b": [self._image(it.run_id, "private_images", i) for i in set_b],
                        "progress": progress}
        return {"done": True, "progress": progress}

    def answer(self, judge: str, key: str, answer: str) -> dict[str, Any]:
        """Store ``judge``'s ``answer`` to item ``key`` at once (again: replaces); progress."""
        judge = check_judge_name(judge)
        if answer not in ANSWERS:
            raise ConfigError(f"answer must be one of {', '.join(ANSWERS)}, got {answer!r}")
        it = self.by_key.get(str(key))
        if it is None:
            raise ConfigError(f"unknown item {key!r} (the page is from another session: "
                              "reload it)")
        with self._lock, self._store() as store:
            store.record_judgement(run_id=it.run_id, judge=judge, item=it.item, kind=it.kind,
                                   index=it.index, claimed=it.claimed, answer=answer)
            return {"ok": True, "progress": {"judge": judge,
                                             **self._progress(self._answered(store, judge))}}


# ------------------------------------------------------------------------------ the page

_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:1.2em auto;max-width:60em;color:#222}
header{display:flex;justify-content:space-between;align-items:baseline;gap:1em}
h1{font-size:1.3em;margin:0}.question{font-size:1.2em;font-weight:bold;margin:1em 0}
.item{display:flex;gap:2.5em;align-items:flex-start}
.item h2{font-size:1em;margin:0 0 .3em}
#a{width:192px;height:auto;border:1px solid #888}
#b{display:flex;flex-wrap:wrap;gap:4px;max-width:420px}#b img{width:96px;height:auto}
img{image-rendering:pixelated;background:#000}
.buttons{margin:1.2em 0;display:flex;gap:.8em}
button{font-size:1.05em;padding:.45em 1.2em;cursor:pointer}
kbd{border:1px solid #aaa;border-radius:3px;padding:0 .3em;background:#f4f4f4}
.hint,#status{color:#555}#done{font-size:1.2em;color:#1a7f37}
[hidden]{display:none !important}
"""

_JS = """
(function () {
  var judge = new URLSearchParams(location.search).get('judge') || DEFAULT_JUDGE;
  var current = null, busy = false;
  var body = document.body;
  document.getElementById('judge').textContent = judge;
  function state(s) { body.setAttribute('data-state', s); }
  function status(text) { document.getElementById('status').textContent = text; }
  function progress(p) {
    document.getElementById('progress').textContent = p.answered + ' / ' + p.total;
    body.setAttribute('data-answered', p.answered);
  }
  function failed(err) { busy = false; state('error'); status('Error: ' + err); }
  function json(r) {
    return r.json().then(function (d) {
      if (!r.ok) { throw new Error(d.error || r.statusText); }
      return d;
    });
  }
  function next() {
    busy = true; state('busy');
    fetch('api/next?judge=' + encodeURIComponent(judge)).then(json).then(function (d) {
      progress(d.progress);
      if (d.done) {
        current = null; busy = false;
        document.getElementById('work').hidden = true;
        document.getElementById('done').hidden = false;
        body.setAttribute('data-key', '');
        state('done');
        return;
      }
      current = d.key;
      document.getElementById('a').src = d.a;
      var b = document.getElementById('b');
      while (b.firstChild) { b.removeChild(b.firstChild); }
      d.b.forEach(function (src) {
        var img = document.createElement('img'); img.src = src; img.alt = 'set B image';
        b.appendChild(img);
      });
      body.setAttribute('data-key', d.key);
      busy = false; status(''); state('ready');
    }).catch(function (e) { failed(e.message); });
  }
  function answer(a) {
    if (busy || current === null) { return; }
    busy = true; state('busy');
    fetch('api/answer', {method: 'POST', headers: {'Content-Type': 'application/json'},
                         body: JSON.stringify({judge: judge, key: current, answer: a})})
      .then(json).then(function (d) { progress(d.progress); status('saved: ' + a); next(); })
      .catch(function (e) { failed(e.message); });
  }
  var keys = {y: 'yes', n: 'no', u: 'unsure'};
  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var a = keys[(e.key || '').toLowerCase()];
    if (a) { e.preventDefault(); answer(a); }
  });
  Array.prototype.forEach.call(document.querySelectorAll('button[data-answer]'), function (el) {
    el.addEventListener('click', function () { answer(el.getAttribute('data-answer')); });
  });
  next();
})();
"""

_BODY = """
<header><h1>invbench judge</h1><span>judge <b id="judge"></b> &middot; answered
<b id="progress">0 / 0</b></span></header>
<div id="work">
<p class="question">Is image A the same class/identity as the images in set B?</p>
<div class="item">
  <div><h2>A</h2><img id="a" alt="image A"></div>
  <div><h2>B</h2><div id="b"></div></div>
</div>
<div class="buttons">
  <button data-answer="yes">Yes <kbd>y</kbd></button>
  <button data-answer="no">No <kbd>n</kbd></button>
  <button data-answer="unsure">Unsure <kbd>u</kbd></button>
</div>
</div>
<p id="done" hidden>All items answered &mdash; thank you.</p>
<p class="hint">Keys: <kbd>y</kbd> yes, <kbd>n</kbd> no, <kbd>u</kbd> unsure. Each answer is
saved at once; close this page whenever you like and reopen it to continue.</p>
<p id="status"></p>
"""

#: the page may talk only to its own server and load nothing else
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; connect-src 'self'")


def judge_page(*, judge: str = "anonymous") -> str:
    """The judging page (self-contained HTML, CSS and script) with ``judge`` as default."""
    default = json.dumps(check_judge_name(judge)).replace("<", "\\u003c")
    return page("invbench judge", _BODY, script=f"var DEFAULT_JUDGE = {default};\n{_JS}",
                css=_CSS, csp=_CSP)


def make_judge_server(
    session: JudgeSession, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
    quiet: bool = True,
) -> ThreadingHTTPServer:
    """An HTTP server for ``session`` on a loopback ``host`` (``port=0``: any free port).

    Call ``serve_forever()`` on it and ``shutdown()`` from another thread to stop.
    """
    from invbench.serving.http import LoopbackHandler, check_loopback_host, loopback_server

    host = check_loopback_host(host)
    if not 0 <= int(port) <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    page_bytes = judge_page(judge=session.judge).encode("utf-8")

    quiet_log = quiet

    class Handler(LoopbackHandler):
        server_version = "invbench-judge"
        quiet = quiet_log
        headers_out = (("Cache-Control", "no-store"),)

        def _json(self, code: int, data: Mapping[str, Any]) -> None:
            self._send(code, json.dumps(data).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            judge = (query.get("judge") or [session.judge])[0]
            try:
                if url.path in ("/", "/index.html"):
                    self._send(200, page_bytes, "text/html; charset=utf-8")
                elif url.path == "/api/next":
                    self._json(200, session.next_item(judge))
                elif url.path == "/api/progress":
                    self._json(200, session.progress(judge))
                elif url.path == "/favicon.ico":
                    self._send(204, b"", "image/x-icon")
                else:
                    self._json(404, {"error": f"no such page: {url.path}"})
            except ConfigError as exc:
                self._json(400, {"error": str(exc)})

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            if urllib.parse.urlsplit(self.path).path != "/api/answer":
                self._json(404, {"error": "POST goes to /api/answer"})
                return
            try:
                length = int(self.headers.get("Content-Length", "-1"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY:
                self._json(400, {"error": f"Content-Length must be 1..{MAX_BODY}"})
                return
            try:
                data = json.loads(self.rfile.read(length))
                if not isinstance(data, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._json(400, {"error": 'the body must be JSON {"judge", "key", "answer"}'})
                return
            try:
                self._json(200, session.answer(str(data.get("judge", session.judge)),
                                               str(data.get("key")), str(data.get("answer"))))
            except ConfigError as exc:
                self._json(400, {"error": str(exc)})

    return loopback_server(host, port, Handler)


def judge_url(server: ThreadingHTTPServer, *, judge: str) -> str:
    """The page's URL for ``judge`` on ``server``."""
    from invbench.serving.http import server_url

    return f"{server_url(server)}?{urllib.parse.urlencode({'judge': judge})}"


# ------------------------------------------------------------------------ summary tables


def human_tables(rates: Mapping[str, Any]) -> list[Table]:
    """Rich tables of :func:`invbench.metrics.human.human_rates`: per attack, per cell, per
    judge (accuracy on controls) and each automatic decision's false-positive / false-negative
    rate against people."""
    attacks = Table(title="human success per attack", title_justify="left",
                    header_style="bold")
    for col in ("attack", "cells", "n", "human success", "unsure"):
        attacks.add_column(col, justify="left" if col == "attack" else "right")
    for name, a in rates.get("attacks", {}).items():
        s = a["success"]
        attacks.add_row(str(name), str(len(a["cells"])), str(s["n"]), fmt_rate(s),
                        str(s["unsure"]))
    cells = Table(title="per cell", title_justify="left", header_style="bold")
    for col in ("id", "defense", "attack", "n", "human success", "unsure"):
        cells.add_column(col, justify="left" if col in ("defense", "attack") else "right")
    for run_id, c in rates.get("cells", {}).items():
        s = c["success"]
        cells.add_row(str(run_id), str(c.get("defense") or "-"), str(c.get("attack") or "-"),
                      str(s["n"]), fmt_rate(s), str(s["unsure"]))
    judges = Table(title="judges on control items", title_justify="left", header_style="bold")
    for col in ("judge", "controls", "accuracy", "unsure"):
        judges.add_column(col, justify="left" if col == "judge" else "right")
    for name, acc in rates.get("judge_accuracy", {}).items():
        if name != "all":
            judges.add_row(str(name), str(acc["n"]), fmt_rate(acc), str(acc["unsure"]))
    agreement = Table(title="automatic decisions against people", title_justify="left",
                      header_style="bold")
    for col in ("attack", "decision", "false positives", "false negatives"):
        agreement.add_column(col, justify="left" if col in ("attack", "decision") else "right")
    for name, a in rates.get("attacks", {}).items():
        for dec, d in a.get("decisions", {}).items():
            fp = fmt_ratio(d["fp_rate"], d["fp"], d["no"])
            fn = fmt_ratio(d["fn_rate"], d["fn"], d["yes"])
            agreement.add_row(str(name), dec, fp, fn)
    return [attacks, cells, judges, agreement]
