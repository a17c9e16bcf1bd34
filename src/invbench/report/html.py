"""A self-contained HTML report of a benchmark store (``invbench report``).

One file, no network: styles and the (small) sorting script are inline and every image is a
``data:image/png;base64,`` URL, so the page can be mailed, archived or opened offline. It
holds

* the results table: one row per inversion cell (done or failed) with ``success`` first
  among the metrics (with its 95% interval), ``acc1``, KNN distance and FID, then the
  ``success`` of the three references (held-out private images, uniform noise, adversarial
  noise), queries, seconds and warnings; a click on a header sorts by that column;
* a small table of the attacks on a model's updates (their scores differ), if any;
* the figures passed in (the privacy-utility trade-off plots);
* the human judging results when there are judgements (``invbench judge``): human success per
  attack and per cell with 95% Wilson intervals, each judge's accuracy on control items, and
  each automatic per-image decision's false-positive / false-negative rate against people;
* per inversion cell, for every attacked class, the private training images beside that
  class's reconstructions (framed green where the automatic ``success`` accepted them). A
  store written before those images were kept beside the reconstructions shows the cell's
  PNG grid instead.

Every string from the store is escaped.

Example::

    rows = store.runs(kind="benchmark")   # store: the results store (bench.store.Store)
    write_report("runs/report.html", rows)
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from invbench._io import atomic_path, invbench_version
from invbench.errors import DataError
from invbench.report.tables import (
    MISSING,
    UPDATE_COLUMNS,
    fmt_float,
    fmt_int,
    fmt_metric,
    fmt_pct,
    fmt_rate,
    fmt_ratio,
)

#: the longer side, in pixels, that every inlined image is upscaled to (nearest neighbour)
IMAGE_PX = 64
#: reconstructions shown per class in a cell's section (the rest are counted)
MAX_RECON_PER_CLASS = 16
#: the tensors a cell's reconstructions file needs for the per-class images and for judging
JUDGING_KEYS = ("images", "labels", "private_images", "private_labels", "heldout_images",
                "heldout_labels")

_esc = html.escape


def image_png(image: Any, *, size: int = IMAGE_PX) -> bytes:
    """PNG bytes of one image, upscaled by nearest neighbour so its longer side is ~``size``.

    Args:
        image: a (C, H, W) or (H, W) tensor or array with values in [0, 1]; C = 1 or 3.
        size: target length of the longer side in pixels (an integer factor; never shrinks).

    Grayscale stays grayscale (PNG mode ``L``), three channels are RGB.
    """
    x = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 3 and x.shape[0] in (1, 3):
        x = x[0] if x.shape[0] == 1 else np.transpose(x, (1, 2, 0))
    elif x.ndim != 2:
        raise DataError(f"an image must have shape (C, H, W) with C = 1 or 3, or (H, W); "
                        f"got {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise DataError("an image contains NaN or Inf values")
    pixels = np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)
    img = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    scale = max(1, round(size / max(img.size)))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def data_url(png: bytes) -> str:
    """``data:image/png;base64,...`` of PNG bytes (an inline image source)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def load_cell_tensors(path: str | Path | None) -> dict[str, Any] | None:
    """The tensors of a cell's ``reconstructions`` file, or ``None`` if there is none."""
    if not path or not Path(path).is_file():
        return None
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # a damaged file: a clear one-line error, not a traceback
        raise DataError(f"cannot read reconstructions file {path}: {exc}") from None


def has_judging_images(tensors: Mapping[str, Any] | None) -> bool:
    """Whether a reconstructions file keeps private and held-out images beside the images."""
    return tensors is not None and all(k in tensors for k in JUDGING_KEYS)


def row_parts(row: Mapping[str, Any]) -> tuple[int | None, dict[str, Any], dict[str, str]]:
    """``(run id, result, artifacts)`` of a ``Store.runs`` row or of a bare result dict."""
    if isinstance(row.get("result"), Mapping):
        result = dict(row["result"])
        artifacts = dict(row.get("artifacts") or result.get("artifacts") or {})
        run_id = row.get("id")
        if result.get("status") is None and row.get("status") is not None:
            result["status"] = row["status"]
    else:
        result, artifacts, run_id = dict(row), dict(row.get("artifacts") or {}), row.get("id")
    return (None if run_id is None else int(run_id)), result, artifacts


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _td(text: str, value: Any = None, *, cls: str = "", raw: bool = False) -> str:
    """A table cell; ``value`` is what sorting uses (a number, or text; ``None`` sorts last)."""
    if isinstance(value, str):
        v: str | None = value
    elif isinstance(value, int) and not isinstance(value, bool):
        v = str(value)
    else:
        num = _num(value)
        v = None if num is None else repr(num)
    sort = "" if v is None else f' data-v="{_esc(v)}"'
    klass = f' class="{cls}"' if cls else ""
    return f"<td{klass}{sort}>{text if raw else _esc(text)}</td>"


def _table(headers: Sequence[tuple[str, str]], rows: Sequence[str], *, cls: str = "") -> str:
    """A sortable table: ``headers`` as (title, "num"|"text"), ``rows`` as ``<tr>`` strings."""
    head = "".join(f'<th data-type="{kind}" title="click to sort">{_esc(title)}</th>'
                   for title, kind in headers)
    return (f'<table class="sortable {cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _is_update(result: Mapping[str, Any]) -> bool:
    return result.get("kind") == "update"


# ---------------------------------------------------------------------------------- tables


def _results_table(cells: Sequence[tuple[int | None, dict[str, Any], dict[str, str]]]) -> str:
    with_fid = any("fid" in (r.get("metrics") or {}) for _, r, _ in cells)
    metrics = [("success", "success"), ("acc1", "acc1"), ("knn_dist", "KNN dist")]
    if with_fid:
        metrics.append(("fid", "FID"))
    headers = [("id", "num"), ("dataset", "text"), ("defense", "text"), ("attack", "text"),
               ("seed", "num"), ("target acc", "num"), *((h, "num") for _, h in metrics),
               ("real success", "num"), ("noise success", "num"), ("adv success", "num"),
               ("queries", "num"), ("seconds", "num"), ("warnings", "num")]
    rows = []
    for run_id, r, _ in cells:
        failed = r.get("status") == "failed"
        anchor = (f'<a href="#cell-{run_id}">{run_id}</a>' if run_id is not None and not failed
                  else _esc(MISSING if run_id is None else str(run_id)))
        tds = [
            _td(anchor, run_id, raw=True),
            _td(str(r.get("dataset", MISSING)), str(r.get("dataset", ""))),
            _td(str(r.get("defense_label") or r.get("defense") or MISSING),
                str(r.get("defense_label") or r.get("defense") or "")),
            _td(str(r.get("attack_label") or r.get("attack") or MISSING),
                str(r.get("attack_label") or r.get("attack") or "")),
            _td(str(r.get("seed", MISSING)), r.get("seed")),
        ]
        if failed:
            blanks = 1 + len(metrics) + 3 + 1
            tds.append(_td("failed", cls="failed"))
            tds += [_td(MISSING)] * (blanks - 1)
            tds.append(_td(fmt_float(r.get("seconds"), digits=1), r.get("seconds")))
            tds.append(_td(f"failed: {r.get('error') or 'unknown error'}", cls="warn"))
        else:
            m = r.get("metrics") or {}
            refs = r.get("references") or {}
            tds.append(_td(fmt_pct(r.get("target_accuracy")), r.get("target_accuracy")))
            for key, _ in metrics:
                tds.append(_td(fmt_metric(key, m), m.get(key),
                               cls="headline" if key == "success" else ""))
            for ref in ("private_test", "noise", "adversarial"):
                value = (refs.get(ref) or {}).get("success")
                tds.append(_td(fmt_pct(value), value))
            warnings = [str(w) for w in r.get("warnings") or []]
            tds.append(_td(fmt_int(r.get("queries")), r.get("queries")))
            tds.append(_td(fmt_float(r.get("seconds"), digits=1), r.get("seconds")))
            text = (f"<details><summary>{len(warnings)}</summary>"
                    f"<ul>{''.join(f'<li>{_esc(w)}</li>' for w in warnings)}</ul></details>"
                    if warnings else "0")
            tds.append(_td(text, len(warnings), cls="warn" if warnings else "", raw=True))
        rows.append(f'<tr class="{"failed" if failed else "done"}">{"".join(tds)}</tr>')
    return _table(headers, rows, cls="results")


def _updates_table(cells: Sequence[tuple[int | None, dict[str, Any], dict[str, str]]]) -> str:
    headers = [("id", "num"), ("defense", "text"), ("attack", "text"), ("target acc", "num"),
               *((h, "num") for _, h in UPDATE_COLUMNS), ("queries", "num"), ("seconds", "num")]
    rows = []
    for run_id, r, _ in cells:
        tds = [_td(MISSING if run_id is None else str(run_id), run_id),
               _td(str(r.get("defense_label") or r.get("defense") or MISSING),
                   str(r.get("defense_label") or r.get("defense") or "")),
               _td(str(r.get("attack_label") or r.get("attack") or MISSING),
                   str(r.get("attack_label") or r.get("attack") or ""))]
        if r.get("status") == "failed":
            tds.append(_td(f"failed: {r.get('error') or 'unknown error'}", cls="failed"))
            tds += [_td(MISSING)] * (len(UPDATE_COLUMNS) + 1)
            tds.append(_td(fmt_float(r.get("seconds"), digits=1), r.get("seconds")))
        else:
            m = r.get("metrics") or {}
            base = (r.get("references") or {}).get("baseline") or {}
            tds.append(_td(fmt_pct(r.get("target_accuracy")), r.get("target_accuracy")))
            for key, _ in UPDATE_COLUMNS:
                value, ref = _num(m.get(key)), _num(base.get(key))
                digits = 4 if key == "update_mse" else 2
                text = (MISSING if value is None else f"{value:.{digits}f}"
                        + ("" if ref is None else f" ({ref:.{digits}f})"))
                tds.append(_td(text, value))
            tds.append(_td(fmt_int(r.get("queries")), r.get("queries")))
            tds.append(_td(fmt_float(r.get("seconds"), digits=1), r.get("seconds")))
        rows.append(f"<tr>{''.join(tds)}</tr>")
    return _table(headers, rows, cls="updates")


def _judging_section(summary: Mapping[str, Any],
                     cells: Mapping[int, Mapping[str, Any]]) -> str:
    parts = ['<section id="human"><h2>Human judging</h2>',
             "<p>People answered <q>Is image A the same class/identity as the images in set "
             "B?</q> (yes / no / unsure) about reconstructions and about control items whose "
             "answer is known (a held-out private image of the class, or of another class); "
             "protocol of Ho et al., arXiv 2505.03519. Rates are <em>yes</em> among yes/no "
             "answers with a 95% Wilson interval; <em>unsure</em> answers are counted apart. "
             f"{len(summary.get('judges', []))} judge(s), {summary.get('answers', 0)} "
             "answers.</p>"]
    rows = []
    for attack, a in summary.get("attacks", {}).items():
        s = a["success"]
        rows.append("<tr>" + _td(str(attack), str(attack)) + _td(str(len(a["cells"])),
                    len(a["cells"])) + _td(str(s["n"]), s["n"])
                    + _td(fmt_rate(s), s["rate"], cls="headline")
                    + _td(str(s["unsure"]), s["unsure"]) + "</tr>")
    parts.append("<h3>Per attack</h3>")
    parts.append(_table([("attack", "text"), ("cells", "num"), ("n", "num"),
                         ("human success", "num"), ("unsure", "num")], rows, cls="human"))
    rows = []
    for run_id, c in summary.get("cells", {}).items():
        s = c["success"]
        auto = (cells.get(int(run_id)) or {}).get("metrics") or {}
        rows.append("<tr>" + _td(str(run_id), int(run_id))
                    + _td(str(c.get("defense") or MISSING), str(c.get("defense") or ""))
                    + _td(str(c.get("attack") or MISSING), str(c.get("attack") or ""))
                    + _td(str(s["n"]), s["n"]) + _td(fmt_rate(s), s["rate"])
                    + _td(str(s["unsure"]), s["unsure"])
                    + _td(fmt_metric("success", auto), auto.get("success")) + "</tr>")
    parts.append("<h3>Per cell</h3>")
    parts.append(_table([("id", "num"), ("defense", "text"), ("attack", "text"), ("n", "num"),
                         ("human success", "num"), ("unsure", "num"),
                         ("automatic success", "num")], rows, cls="human-cells"))
    rows = []
    for judge, acc in summary.get("judge_accuracy", {}).items():
        if judge == "all":
            continue
        rows.append("<tr>" + _td(str(judge), str(judge)) + _td(str(acc["n"]), acc["n"])
                    + _td(fmt_rate(acc), acc["rate"]) + _td(str(acc["unsure"]),
                                                                 acc["unsure"]) + "</tr>")
    parts.append("<h3>Judges on control items</h3>")
    parts.append(_table([("judge", "text"), ("controls", "num"), ("accuracy", "num"),
                         ("unsure", "num")], rows, cls="judges"))
    rows = []
    for attack, a in summary.get("attacks", {}).items():
        for name, d in a.get("decisions", {}).items():
            fp = fmt_ratio(d["fp_rate"], d["fp"], d["no"])
            fn = fmt_ratio(d["fn_rate"], d["fn"], d["yes"])
            rows.append("<tr>" + _td(str(attack), str(attack)) + _td(name, name)
                        + _td(fp, d["fp_rate"]) + _td(fn, d["fn_rate"]) + "</tr>")
    parts.append("<h3>Automatic decisions against people</h3><p>False positive: the decision "
                 "says yes where a person said no (share of the <em>no</em> answers); false "
                 "negative: it says no where a person said yes. <code>success</code> is the "
                 "headline decision, <code>pred_*</code> and <code>vote_*</code> single "
                 "evaluators, <code>majority</code> the ensemble's vote.</p>")
    parts.append(_table([("attack", "text"), ("decision", "text"), ("false positives", "num"),
                         ("false negatives", "num")], rows, cls="agreement"))
    parts.append("</section>")
    return "".join(parts)


# ---------------------------------------------------------------------------- cell images


def _img(png: bytes, *, alt: str, title: str = "", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    tip = f' title="{_esc(title)}"' if title else ""
    return f'<img{klass} alt="{_esc(alt)}"{tip} src="{data_url(png)}">'


def _cell_section(run_id: int | None, r: Mapping[str, Any], artifacts: Mapping[str, str],
                  tensors: Mapping[str, Any] | None) -> str:
    name = (f"{r.get('defense_label') or r.get('defense')} x "
            f"{r.get('attack_label') or r.get('attack')}")
    anchor = f' id="cell-{run_id}"' if run_id is not None else ""
    m = r.get("metrics") or {}
    head = (f"<section class=\"cell\"{anchor}><h3>{_esc('' if run_id is None else f'{run_id}: ')}"
            f"{_esc(name)} <small>({_esc(str(r.get('dataset', MISSING)))}, seed "
            f"{_esc(str(r.get('seed', MISSING)))})</small></h3><p class=\"meta\">success "
            f"{_esc(fmt_metric('success', m))}, acc1 {_esc(fmt_metric('acc1', m))}, "
            f"target accuracy {_esc(fmt_pct(r.get('target_accuracy')))}</p>")
    if has_judging_images(tensors):
        assert tensors is not None
        return head + _class_rows(tensors) + "</section>"
    grid = artifacts.get("grid")
    if grid and Path(grid).is_file():
        png = Path(grid).read_bytes()
        return (head + "<p class=\"note\">This cell was stored without its private images; "
                "its comparison grid (private | reconstructions per class):</p>"
                + _img(png, alt=f"grid of {name}", cls="grid") + "</section>")
    return head + "<p class=\"note\">No images stored for this cell.</p></section>"


def _class_rows(t: Mapping[str, Any]) -> str:
    labels = [int(v) for v in t["labels"].tolist()]
    private_labels = [int(v) for v in t["private_labels"].tolist()]
    success = ([int(v) for v in t["img_success"].tolist()] if "img_success" in t
               else [None] * len(labels))
    out = ['<div class="classes">']
    for c in sorted(set(labels)):
        priv = [i for i, y in enumerate(private_labels) if y == c]
        recon = [i for i, y in enumerate(labels) if y == c]
        cells = [_img(image_png(t["private_images"][i]), alt=f"private image of class {c}",
                      cls="private") for i in priv]
        shown = recon[:MAX_RECON_PER_CLASS]
        recon_imgs = []
        for i in shown:
            verdict = {1: "accepted", 0: "rejected", None: "not judged"}[success[i]]
            cls = {1: "ok", 0: "no", None: ""}[success[i]]
            recon_imgs.append(_img(image_png(t["images"][i]), alt=f"reconstruction {i}",
                                   title=f"reconstruction {i}: automatic success {verdict}",
                                   cls=f"recon {cls}".strip()))
        more = (f'<span class="more">+{len(recon) - len(shown)} more</span>'
                if len(recon) > len(shown) else "")
        out.append(f'<div class="class"><span class="label">class {c}</span>'
                   f'<span class="set">{"".join(cells)}</span><span class="sep"></span>'
                   f'<span class="set">{"".join(recon_imgs)}{more}</span></div>')
    out.append("</div>")
    return "".join(out)


# ------------------------------------------------------------------------------- the page


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.6em}h3{font-size:1.05em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#eee;cursor:pointer;user-select:none;white-space:nowrap}
th[data-type=text]{text-align:left}td{white-space:nowrap}table{font-size:13px}
table.results th{white-space:normal}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td:nth-child(-n+4){text-align:left;white-space:normal}td.headline{font-weight:bold}
td.warn{color:#8a5300;text-align:left;white-space:normal;max-width:36em;font-size:.9em}
td.warn ul{margin:.2em 0;padding-left:1.2em}summary{cursor:pointer}
td.failed,tr.failed td{color:#b00020}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figure img{max-width:560px}
.classes{display:flex;flex-direction:column;gap:4px}
.class{display:flex;align-items:center;gap:6px}
.label{width:5.5em;font-weight:bold}.set{display:flex;flex-wrap:wrap;gap:2px}
.sep{width:4px;align-self:stretch;background:#e6a028}
img{image-rendering:pixelated}img.recon{outline:3px solid #bbb;outline-offset:-3px}
img.ok{outline-color:#1a9c3a}img.no{outline-color:#c62828}
.note,.meta{color:#555}.more{align-self:center;color:#555;padding-left:4px}
"""

_JS = """
(function () {
  function sortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.addEventListener('click', function () {
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var num = th.getAttribute('data-type') === 'num';
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
          var xm = x === null || x === '', ym = y === null || y === '';
          if (xm || ym) { return xm === ym ? 0 : (xm ? 1 : -1); }
          var c = num ? Number(x) - Number(y) : x.localeCompare(y);
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), sortable);
})();
"""

#: the page may load nothing: only inline styles, the inline script and data: images
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")


def page(title: str, body: str, *, script: str = "", css: str = "", csp: str = CSP) -> str:
    """A complete self-contained HTML document (inline CSS and script, no external loads).

    ``csp`` is the page's Content-Security-Policy: by default nothing may be loaded but the
    inline style, the inline script and ``data:`` images.
    """
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{_esc(title)}</title><style>{css}</style></head>\n<body>\n{body}\n"
        f"<script>{script}</script>\n</body></html>\n"
    )


def render_report(
    rows: Sequence[Mapping[str, Any]],
    *,
    figures: Sequence[tuple[str, bytes]] = (),
    judgements: Sequence[Mapping[str, Any]] | None = None,
    title: str = "invbench report",
) -> str:
    """The report as one self-contained HTML string.

    Args:
        rows: benchmark cells, as ``Store.runs(kind="benchmark")`` returns them (bare result
            dicts with an ``artifacts`` key work too); inversion cells go to the results table
            and get an image section, update-attack cells (``kind: "update"``) a table of
            their own.
        figures: ``(title, PNG bytes)`` drawn inline in this order (the trade-off plots).
        judgements: stored human answers (``Store.judgements()``); when non-empty the report
            has a human judging section.
        title: the page title and heading.

    Raises :class:`~invbench.errors.DataError` for an unreadable reconstructions file.
    """
    parts = [(row_parts(r)) for r in rows]
    inversions = [p for p in parts if not _is_update(p[1])]
    updates = [p for p in parts if _is_update(p[1])]
    tensors: dict[int, dict[str, Any] | None] = {}
    for k, (_, r, artifacts) in enumerate(inversions):
        if r.get("status") != "failed":
            tensors[k] = load_cell_tensors(artifacts.get("reconstructions"))
    datasets = sorted({str(r.get("dataset", MISSING)) for _, r, _ in parts})
    body = [f"<h1>{_esc(title)}</h1>",
            f"<p class=\"meta\">{len(inversions)} inversion cell(s)"
            + (f", {len(updates)} update cell(s)" if updates else "")
            + f" on {_esc(', '.join(datasets) or MISSING)}; invbench "
            f"{_esc(invbench_version())}. Rates are percentages; <code>success</code> is the "
            "verified headline (95% interval in brackets); the reference columns give the "
            "<code>success</code> of held-out private images (real), uniform noise and "
            "adversarial noise made on the target. Click a header to sort.</p>",
            '<h2 id="results">Results</h2>']
    body.append(_results_table(inversions) if inversions
                else '<p class="note">No inversion cells.</p>')
    if updates:
        body.append("<h2>Attacks on the target's updates</h2><p class=\"meta\">Each score with, "
                    "in brackets, what guessing without queries scores.</p>")
        body.append(_updates_table(updates))
    if figures:
        body.append('<h2 id="figures">Privacy-utility trade-off</h2>')
        for fig_title, png in figures:
            body.append(f"<figure>{_img(png, alt=str(fig_title), cls='figure')}"
                        f"<figcaption>{_esc(str(fig_title))}</figcaption></figure>")
    if judgements:
        from invbench.metrics.human import automatic_decisions, cell_info, summarize_judgements

        info: dict[int, dict[str, Any]] = {}
        decisions: dict[int, dict[str, list[bool]]] = {}
        for k, (run_id, r, _) in enumerate(inversions):
            if run_id is None:
                continue
            info[run_id] = {**cell_info({"result": r}), "metrics": r.get("metrics") or {}}
            if tensors.get(k) is not None and "labels" in tensors[k]:  # type: ignore[operator]
                decisions[run_id] = automatic_decisions(tensors[k])  # type: ignore[arg-type]
        summary = summarize_judgements(list(judgements), cells=info, decisions=decisions)
        body.append(_judging_section(summary, info))
    done = [(k, p) for k, p in enumerate(inversions) if p[1].get("status") != "failed"]
    if done:
        body.append('<h2 id="images">Private images and reconstructions</h2><p class="meta">'
                    "Per attacked class: private training images (left of the bar) and the "
                    "reconstructions (right), framed green where the automatic "
                    "<code>success</code> accepted them and red where it did not.</p>")
        for k, (run_id, r, artifacts) in done:
            body.append(_cell_section(run_id, r, artifacts, tensors.get(k)))
    return page(title, "\n".join(body), script=_JS, css=_CSS)


def write_report(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    figures: Sequence[tuple[str, bytes]] = (),
    judgements: Sequence[Mapping[str, Any]] | None = None,
    title: str = "invbench report",
) -> Path:
    """Write :func:`render_report` to ``path`` atomically (the old file stays until done)."""
    text = render_report(rows, figures=figures, judgements=judgements, title=title)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
