"""Human-judging rates on tiny cases counted by hand."""

from __future__ import annotations

import pytest
import torch

from invbench.errors import DataError
from invbench.metrics.human import (
    Rate,
    automatic_decisions,
    decision_agreement,
    human_success,
    judge_accuracy,
    summarize_judgements,
)


def _r(index: int, answer: str, *, run_id: int = 1, judge: str = "ann") -> dict:
    return {"run_id": run_id, "judge": judge, "item": f"r:{index}", "kind": "reconstruction",
            "index": index, "answer": answer}


def _c(kind: str, answer: str, *, run_id: int = 1, judge: str = "ann") -> dict:
    return {"run_id": run_id, "judge": judge, "item": f"{kind}:{answer}", "kind": kind,
            "index": -1, "answer": answer}


def test_human_success_counts_yes_among_decided_reconstructions_with_wilson() -> None:
    answers = [_r(0, "yes"), _r(1, "yes"), _r(2, "no"), _r(3, "unsure"),
               _c("control-positive", "yes"), _c("control-negative", "yes")]
    rate = human_success(answers)
    assert rate == Rate(k=2, n=3, unsure=1)
    # Wilson 95%, 2 of 3: centre (2/3 + z^2/6) / (1 + z^2/3), z = 1.96
    d = rate.to_dict()
    assert d["rate"] == pytest.approx(2 / 3)
    assert d["lo"] == pytest.approx(0.2077, abs=1e-4) and d["hi"] == pytest.approx(0.9385, abs=1e-4)
    assert (d["k"], d["n"], d["unsure"]) == (2, 3, 1)
    # 8 of 10: (0.4902, 0.9433), the worked example of metrics.success
    lo, hi = human_success([_r(i, "yes" if i < 8 else "no") for i in range(10)]).interval
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    empty = human_success([_r(0, "unsure")]).to_dict()
    assert empty == {"rate": None, "lo": None, "hi": None, "k": 0, "n": 0, "unsure": 1}
    with pytest.raises(DataError, match="answer"):
        human_success([_r(0, "maybe")])


def test_judge_accuracy_scores_only_controls_against_their_truth() -> None:
    controls = [_c("control-positive", "yes"), _c("control-positive", "no"),
                _c("control-negative", "no"), _c("control-negative", "yes"),
                _c("control-negative", "no"), _c("control-positive", "unsure"), _r(0, "yes")]
    acc = judge_accuracy(controls)
    assert acc == Rate(k=3, n=5, unsure=1)
    lo, hi = acc.interval  # 3 of 5: (0.2307, 0.8824)
    assert (round(lo, 4), round(hi, 4)) == (0.2307, 0.8824)


def test_automatic_decisions_from_a_cells_tensors() -> None:
    t = {
        "labels": torch.tensor([0, 1, 2, 3]),
        "img_success": torch.tensor([1, 0, 0, 1], dtype=torch.uint8),
        "img_pred_resnet": torch.tensor([0, 1, 0, 0]),
        "img_vote_a": torch.tensor([0, 1, 2, 0]),
        "img_vote_b": torch.tensor([0, 0, 2, 0]),
        "img_vote_c": torch.tensor([1, 1, 0, 3]),
        "img_knn_dist": torch.tensor([1.0, 2.0, 3.0, 4.0]),  # not a decision
    }
    d = automatic_decisions(t)
    assert set(d) == {"success", "pred_resnet", "vote_a", "vote_b", "vote_c", "majority"}
    assert d["success"] == [True, False, False, True]
    assert d["pred_resnet"] == [True, True, False, False]
    assert d["vote_c"] == [False, True, False, True]
    # majority of 3 votes: image 0 a,b (2/3) yes; 1 a,c yes; 2 a,b yes; 3 only c -> no
    assert d["majority"] == [True, True, True, False]


def test_decision_agreement_false_positive_and_negative_rates() -> None:
    decisions = {"success": [1, 0, 1, 0, 1], "always": [1, 1, 1, 1, 1]}
    human = [_r(0, "yes"), _r(1, "yes"), _r(2, "no"), _r(3, "no"), _r(4, "unsure"),
             _r(2, "no", judge="bob"), _c("control-positive", "no")]
    out = decision_agreement(decisions, human)
    # people said yes to 0 and 1: success says no to 1 -> FN 1/2;
    # people said no to 2 (twice) and 3: success says yes to 2 -> FP 2/3
    assert out["success"] == {"fp": 2, "no": 3, "fp_rate": pytest.approx(2 / 3),
                              "fn": 1, "yes": 2, "fn_rate": 0.5}
    assert out["always"]["fp_rate"] == 1.0 and out["always"]["fn_rate"] == 0.0
    assert decision_agreement({"x": [1]}, [_r(0, "yes")])["x"]["fp_rate"] is None
    with pytest.raises(DataError, match="image 3"):
        decision_agreement({"x": [1, 0]}, [_r(3, "yes")])


def test_summary_per_cell_per_attack_and_per_judge() -> None:
    j = [_r(0, "yes", run_id=1), _r(1, "no", run_id=1), _r(0, "yes", run_id=2),
         _r(1, "yes", run_id=2, judge="bob"), _c("control-positive", "yes", run_id=2),
         _c("control-negative", "yes", run_id=1, judge="bob")]
    cells = {1: {"attack": "gmi", "defense": "none"}, 2: {"attack": "gmi", "defense": "mid"}}
    decisions = {1: {"success": [True, True]}, 2: {"success": [False, True]}}
    s = summarize_judgements(j, cells=cells, decisions=decisions)
    assert s["judges"] == ["ann", "bob"] and s["answers"] == 6
    assert (s["cells"][1]["success"]["k"], s["cells"][1]["success"]["n"]) == (1, 2)
    assert (s["cells"][2]["success"]["k"], s["cells"][2]["success"]["n"]) == (2, 2)
    gmi = s["attacks"]["gmi"]
    assert gmi["cells"] == [1, 2] and (gmi["success"]["k"], gmi["success"]["n"]) == (3, 4)
    # cell 1: human no to image 1, success yes -> FP 1/1; cell 2: human yes to 0, success no
    assert gmi["decisions"]["success"] == {"fp": 1, "no": 1, "fp_rate": 1.0, "fn": 1,
                                           "yes": 3, "fn_rate": pytest.approx(1 / 3)}
    assert s["judge_accuracy"]["ann"]["k"] == 1 and s["judge_accuracy"]["bob"]["k"] == 0
    assert (s["judge_accuracy"]["all"]["k"], s["judge_accuracy"]["all"]["n"]) == (1, 2)
