"""Human judging: success rates from people, the judges' own accuracy, and how often each
automatic decision disagrees with them.

Protocol: Ho et al., "Revisiting Model Inversion Evaluation" (2025,
https://arxiv.org/abs/2505.03519). A person sees one item at a time: an image A beside a set
B of private training images of one class, and answers whether A is the same class (identity)
as B — ``yes``, ``no`` or ``unsure``. Items are reconstructions (A = a reconstruction of the
class of B) and controls with a known truth: a held-out private image of the class of B
(``control-positive``, truth yes) or of another class (``control-negative``, truth no). The
controls measure the judge; the reconstructions measure the attack; comparing the
reconstruction answers with the benchmark's per-image decisions measures the evaluators'
false positives and false negatives.

Answers are dicts as :meth:`invbench.bench.store.Store.judgements` returns them
(``kind``, ``index``, ``answer``, ``run_id``, ``judge``...). Rates come with a 95% Wilson
interval; ``unsure`` answers are excluded from every rate and counted apart.

Example::

    from invbench.metrics.human import human_success, judge_accuracy
    human_success([{"kind": "reconstruction", "answer": "yes"},
                   {"kind": "reconstruction", "answer": "no"}]).rate      # 0.5
    human_rates(store)["attacks"]["gmi"]["success"]                     # {"rate": ..., ...}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from invbench.errors import DataError
from invbench.metrics.success import wilson_interval

#: the answers a judge may give, and the kinds of item (the store's JUDGE_* in that order)
ANSWERS = ("yes", "no", "unsure")
RECONSTRUCTION = "reconstruction"
CONTROL_POSITIVE = "control-positive"
CONTROL_NEGATIVE = "control-negative"
KINDS = (RECONSTRUCTION, CONTROL_POSITIVE, CONTROL_NEGATIVE)


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` decided answers, with ``unsure`` answers counted apart.

    ``rate`` is ``k / n`` and ``lo``/``hi`` its 95% Wilson interval; all three are ``None``
    when ``n`` is 0 (nothing decided yet).
    """

    k: int
    n: int
    unsure: int = 0

    @property
    def rate(self) -> float | None:
        """``k / n``, or ``None`` without decided answers."""
        return self.k / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | tuple[None, None]:
        """The 95% Wilson interval of :attr:`rate` (``(None, None)`` when ``n`` is 0)."""
        return wilson_interval(self.k, self.n) if self.n else (None, None)

    def to_dict(self) -> dict[str, Any]:
        """``{"rate", "lo", "hi", "k", "n", "unsure"}`` (JSON-able)."""
        lo, hi = self.interval
        return {"rate": self.rate, "lo": lo, "hi": hi, "k": self.k, "n": self.n,
                "unsure": self.unsure}


def _answer(a: Mapping[str, Any]) -> str:
    answer = a.get("answer")
    if answer not in ANSWERS:
        raise DataError(f"a judgement's answer must be one of {', '.join(ANSWERS)}; got {answer!r}")
    return str(answer)


def human_success(answers: Iterable[Mapping[str, Any]]) -> Rate:
    """The fraction of reconstructions people accept: ``yes`` among ``yes``/``no`` answers.

    Only items of kind ``reconstruction`` count (controls are ignored); ``unsure`` answers are
    excluded and counted in ``unsure``.

    Example: answers yes, yes, no, unsure -> ``Rate(k=2, n=3, unsure=1)``, rate 0.667,
    interval (0.208, 0.939).
    """
    k = n = unsure = 0
    for a in answers:
        if a.get("kind", RECONSTRUCTION) != RECONSTRUCTION:
            continue
        answer = _answer(a)
        if answer == "unsure":
            unsure += 1
            continue
        n += 1
        k += answer == "yes"
    return Rate(k, n, unsure)


def judge_accuracy(controls: Iterable[Mapping[str, Any]]) -> Rate:
    """The judges' accuracy on control items (truth known): right answers among decided ones.

    A ``control-positive`` (a held-out image of set B's class) is right when answered
    ``yes``, a ``control-negative`` (another class) when answered ``no``; reconstruction items
    are ignored and ``unsure`` answers counted apart.

    Example: positive yes, positive no, negative no, negative unsure -> ``Rate(2, 3, 1)``.
    """
    k = n = unsure = 0
    for c in controls:
        kind = c.get("kind")
        if kind not in (CONTROL_POSITIVE, CONTROL_NEGATIVE):
            continue
        answer = _answer(c)
        if answer == "unsure":
            unsure += 1
            continue
        n += 1
        k += answer == ("yes" if kind == CONTROL_POSITIVE else "no")
    return Rate(k, n, unsure)


def automatic_decisions(tensors: Mapping[str, Any]) -> dict[str, list[bool]]:
    """Each automatic per-image yes/no decision stored beside a cell's reconstructions.

    From the cell's safetensors (``labels`` = the claimed classes): ``success`` from
    ``img_success`` (1 = yes), ``pred_<ev>`` from each ``img_pred_<ev>`` and ``vote_<ev>``
    from each ``img_vote_<ev>`` (yes iff the evaluator's label is the claimed one), and
    ``majority`` (yes iff more than half of the ``img_vote_*`` members give the claimed label,
    as :func:`invbench.metrics.ensemble.majority_hit`). Values are lists of ``bool`` indexed
    like the reconstructions.
    """
    if "labels" not in tensors:
        raise DataError("the reconstructions file has no 'labels'")
    labels = [int(v) for v in _flat(tensors["labels"])]
    out: dict[str, list[bool]] = {}
    if "img_success" in tensors:
        out["success"] = [bool(v) for v in _flat(tensors["img_success"])]
    votes: list[list[int]] = []
    for key in sorted(tensors):
        for prefix in ("img_pred_", "img_vote_"):
            if key.startswith(prefix):
                values = [int(v) for v in _flat(tensors[key])]
                if len(values) != len(labels):
                    raise DataError(f"'{key}' has {len(values)} values for {len(labels)} images")
                out[key.removeprefix("img_")] = [v == y for v, y in zip(values, labels,
                                                                        strict=True)]
                if prefix == "img_vote_":
                    votes.append(values)
    if votes:
        m = len(votes)
        out["majority"] = [
            2 * sum(v[i] == y for v in votes) > m for i, y in enumerate(labels)
        ]
    for name, values in out.items():
        if len(values) != len(labels):
            raise DataError(f"decision '{name}' has {len(values)} values for {len(labels)} images")
    return out


def _flat(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return list(value)


def decision_agreement(
    decisions: Mapping[str, Sequence[bool | int]], human: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """False-positive and false-negative rates of automatic decisions, people as the truth.

    Args:
        decisions: ``{name: per-image yes (truthy) / no}``, indexed like the reconstructions
            (:func:`automatic_decisions`).
        human: answers to reconstruction items, each with its ``index``; controls and
            ``unsure`` answers are skipped. Several answers about one image each count.

    Returns ``{name: {"fp", "no", "fp_rate", "fn", "yes", "fn_rate"}}``: ``fp`` of the ``no``
    human answers got an automatic yes (``fp_rate = fp / no``), ``fn`` of the ``yes`` answers
    an automatic no; a rate is ``None`` when its denominator is 0.

    Example: decisions ``{"success": [1, 0, 1]}``, human yes/no/no on images 0/1/2 ->
    ``fp_rate`` 1/2 (image 2), ``fn_rate`` 0/1.
    """
    pairs: list[tuple[int, bool]] = []
    for a in human:
        if a.get("kind", RECONSTRUCTION) != RECONSTRUCTION:
            continue
        answer = _answer(a)
        if answer == "unsure":
            continue
        pairs.append((int(a["index"]), answer == "yes"))
    out: dict[str, dict[str, Any]] = {}
    for name, values in decisions.items():
        fp = no = fn = yes = 0
        for index, said_yes in pairs:
            if not 0 <= index < len(values):
                raise DataError(
                    f"a judgement names image {index}; decision '{name}' has {len(values)}"
                )
            auto = bool(values[index])
            if said_yes:
                yes += 1
                fn += not auto
            else:
                no += 1
                fp += auto
        out[name] = {"fp": fp, "no": no, "fp_rate": fp / no if no else None,
                     "fn": fn, "yes": yes, "fn_rate": fn / yes if yes else None}
    return out


def _merge_agreement(parts: Iterable[Mapping[str, Mapping[str, Any]]]) -> dict[str, dict]:
    """Pool :func:`decision_agreement` results (counts add up; rates recomputed)."""
    total: dict[str, dict[str, int]] = {}
    for part in parts:
        for name, c in part.items():
            t = total.setdefault(name, {"fp": 0, "no": 0, "fn": 0, "yes": 0})
            for key in t:
                t[key] += int(c[key])
    return {
        name: {"fp": t["fp"], "no": t["no"], "fp_rate": t["fp"] / t["no"] if t["no"] else None,
               "fn": t["fn"], "yes": t["yes"],
               "fn_rate": t["fn"] / t["yes"] if t["yes"] else None}
        for name, t in total.items()
    }


def summarize_judgements(
    judgements: Sequence[Mapping[str, Any]],
    *,
    cells: Mapping[int, Mapping[str, Any]],
    decisions: Mapping[int, Mapping[str, Sequence[bool | int]]] | None = None,
) -> dict[str, Any]:
    """Human rates per cell, per attack and per judge.

    Args:
        judgements: the stored answers (:meth:`~invbench.bench.store.Store.judgements`).
        cells: ``{run_id: {"attack": label, "defense": label, "dataset": ...}}`` naming each
            judged cell (answers of a cell missing here are grouped under attack ``"?"``).
        decisions: ``{run_id: automatic_decisions(...)}``; cells missing here get no
            agreement numbers.

    Returns ``{"judges", "answers", "judge_accuracy": {"all": rate, judge: rate, ...},
    "cells": {run_id: {"run_id", "dataset", "defense", "attack", "success", "decisions"}},
    "attacks": {attack: {"attack", "cells", "success", "decisions"}}}`` where each rate is a
    :meth:`Rate.to_dict` and ``decisions`` is :func:`decision_agreement`'s result.
    """
    decisions = decisions or {}
    by_cell: dict[int, list[Mapping[str, Any]]] = {}
    for j in judgements:
        by_cell.setdefault(int(j["run_id"]), []).append(j)
    judges = sorted({str(j["judge"]) for j in judgements})
    accuracy = {"all": judge_accuracy(judgements).to_dict()}
    for name in judges:
        accuracy[name] = judge_accuracy(j for j in judgements if j["judge"] == name).to_dict()
    out_cells: dict[int, dict[str, Any]] = {}
    per_attack: dict[str, list[int]] = {}
    for run_id in sorted(by_cell):
        info = cells.get(run_id, {})
        attack = str(info.get("attack", "?"))
        answers = by_cell[run_id]
        agreement = (decision_agreement(decisions[run_id], answers)
                     if run_id in decisions else {})
        out_cells[run_id] = {
            "run_id": run_id,
            "dataset": info.get("dataset"),
            "defense": info.get("defense"),
            "attack": attack,
            "success": human_success(answers).to_dict(),
            "decisions": agreement,
        }
        per_attack.setdefault(attack, []).append(run_id)
    attacks: dict[str, dict[str, Any]] = {}
    for attack, ids in per_attack.items():
        answers = [a for i in ids for a in by_cell[i]]
        attacks[attack] = {
            "attack": attack,
            "cells": ids,
            "success": human_success(answers).to_dict(),
            "decisions": _merge_agreement(out_cells[i]["decisions"] for i in ids),
        }
    return {"judges": judges, "answers": len(judgements), "judge_accuracy": accuracy,
            "cells": out_cells, "attacks": attacks}


class _JudgementStore(Protocol):
    def runs(self, *, kind: str | None = None) -> list[dict[str, Any]]: ...

    def judgements(self, *, run_id: int | None = None, judge: str | None = None
                   ) -> list[dict[str, Any]]: ...


def cell_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """What names a stored benchmark cell in the human-rate tables (a ``Store.runs`` row)."""
    res = row.get("result") or {}
    return {
        "dataset": res.get("dataset"),
        "defense": res.get("defense_label") or res.get("defense"),
        "attack": res.get("attack_label") or res.get("attack"),
    }


def load_decisions(path: str | Path) -> dict[str, list[bool]] | None:
    """:func:`automatic_decisions` of a reconstructions file, ``None`` if it is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    return automatic_decisions(load_file(str(path)))


def human_rates(store: _JudgementStore) -> dict[str, Any]:
    """:func:`summarize_judgements` of everything a results store holds.

    Reads the judgements, names each judged cell from its run row and compares the answers
    with the per-image decisions in the cell's ``reconstructions`` file (when it still
    exists). Cells are keyed by run id: ``human_rates(store)["cells"][run_id]["success"]``.
    """
    judgements = store.judgements()
    judged = {int(j["run_id"]) for j in judgements}
    cells: dict[int, dict[str, Any]] = {}
    decisions: dict[int, dict[str, list[bool]]] = {}
    for row in store.runs(kind="benchmark"):
        run_id = int(row["id"])
        if run_id not in judged:
            continue
        cells[run_id] = cell_info(row)
        path = (row.get("artifacts") or {}).get("reconstructions")
        found = load_decisions(path) if path else None
        if found is not None:
            decisions[run_id] = found
    return summarize_judgements(judgements, cells=cells, decisions=decisions)
