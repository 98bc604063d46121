"""`tune report`'s per-class recall and most confident mistakes, from lockbox records
built by the same code the refit runs (``tuner.run.mistakes``)."""

from __future__ import annotations

import numpy as np

from tuner.run.mistakes import find_mistakes
from tuner.views.report import _render_test, _test_summary


def _entry(y: np.ndarray, proba: np.ndarray, names: list[str]) -> dict:
    return {
        "trial_number": 3,
        "metric": "accuracy",
        "score": float(np.mean(proba.argmax(axis=1) == y)),
        "metrics": {},
        "n_test": len(y),
        "scored_at": "2026-12-01T00:00:00+0000",
        "mlflow_run_id": "abc",
        **find_mistakes(names, np.arange(len(y)) + 100, y, proba).record(),
    }


def _lines(entry: dict) -> list[str]:
    test = _test_summary([entry], {"number": 3}, "maximize")
    assert test is not None
    return _render_test({"metric": "accuracy", "test": test})


def test_ten_classes_all_shown_with_the_lowest_and_the_mistakes() -> None:
    y = np.repeat(np.arange(10), 10)
    proba = np.eye(10)[y] * 0.9 + 0.01
    proba[[80, 81, 82], 1] = 0.95  # three 8s predicted as 1, the most confident mistakes
    proba[5, 7] = 0.92  # a 0 predicted as 7
    lines = _lines(_entry(y, proba, [str(i) for i in range(10)]))
    recall = next(line for line in lines if line.startswith("per-class recall"))
    assert recall.startswith("per-class recall: 0 0.90, 1 1.00, 2 1.00")
    assert recall.endswith("(lowest: 8 0.70 on 10 samples)")
    at = lines.index("most confident of the 4 mistakes (more in errors/ on the refit's MLflow run):")
    assert lines[at + 1] == "    row 180: true 8, predicted 1 (p=0.95)"  # dataset rows, not positions
    assert lines[at + 4] == "    row 105: true 0, predicted 7 (p=0.92)"


def test_many_classes_show_the_lowest_five() -> None:
    n = 30
    y = np.repeat(np.arange(n), 2)
    proba = np.eye(n)[y]
    for c in (4, 9, 25):
        proba[2 * c, (c + 1) % n] = 2.0  # one of two samples of these classes wrong
    lines = _lines(_entry(y, proba, [f"k{i}" for i in range(n)]))
    recall = next(line for line in lines if line.startswith("per-class recall"))
    assert recall == (
        "per-class recall, the lowest 5 of 30 classes: k4 0.50 (2 samples), k9 0.50 (2 samples), "
        "k25 0.50 (2 samples), k0 1.00 (2 samples), k1 1.00 (2 samples)"
    )


def test_no_mistakes_says_so_and_the_json_has_it() -> None:
    y = np.array([0, 1, 0, 1])
    entry = _entry(y, np.eye(2)[y], ["no", "yes"])
    test = _test_summary([entry], {"number": 3}, "maximize")
    assert test is not None and test["mistakes"] == {"count": 0, "most_confident": []}
    assert test["per_class_recall"] == {
        "no": {"recall": 1.0, "support": 2},
        "yes": {"recall": 1.0, "support": 2},
    }
    lines = _lines(entry)
    assert "no mistakes: all 4 test samples were classified right" in lines
    assert not any("most confident" in line for line in lines)


def test_a_record_from_before_error_analysis_renders_as_before() -> None:
    entry = _entry(np.array([0, 1]), np.eye(2), ["a", "b"])
    for key in ("per_class_recall", "n_classes", "mistakes"):
        del entry[key]
    test = _test_summary([entry], {"number": 3}, "maximize")
    assert test is not None and "per_class_recall" not in test
    assert not any("recall" in line or "mistake" in line for line in _lines(entry))
