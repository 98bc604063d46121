"""What the refit model got wrong on the held-out test split: its most confident
mistakes and the recall of each class.

Computed once, beside the lockbox's scoring: a few mistakes and the per-class recall go
into the scoring record (so ``tune report`` shows them without MLflow); the longer list
goes to the refit's MLflow run under ``errors/``, as an image grid for image data and as
a CSV of the feature rows for tables. Row numbers index the dataset as loaded
(``splits.test`` holds indices into ``dataset.X``), so a user can look each one up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ARTIFACT_DIR",
    "Mistakes",
    "find_mistakes",
    "log_mistakes",
    "mistakes_csv",
    "most_confident_wrong",
    "per_class_recall",
]

ARTIFACT_DIR = "errors"
N_LOGGED = 25  # mistakes on the refit's MLflow run
N_RECORDED = 5  # mistakes in the scoring record (study user attrs: keep it small)
MAX_CLASSES_RECORDED = 50  # beyond, the record keeps the lowest recalls only
N_LOWEST_RECORDED = 20


def most_confident_wrong(y_true: np.ndarray, proba: np.ndarray, k: int) -> np.ndarray:
    """Positions of the (at most) ``k`` misclassified samples whose predicted class had
    the highest probability, most confident first (ties: the earlier position first).

    Args:
        y_true: integer labels, shape (N,).
        proba: class probabilities, shape (N, C); the prediction is the argmax.
        k: how many to return.
    """
    pred = proba.argmax(axis=1)
    wrong = np.flatnonzero(pred != y_true)
    confidence = np.nan_to_num(proba[wrong, pred[wrong]], nan=-np.inf)  # a NaN row ranks last
    return wrong[np.argsort(-confidence, kind="stable")[:k]]


def per_class_recall(y_true: np.ndarray, pred: np.ndarray, names: list[str]) -> dict[str, dict[str, Any]]:
    """Class name → ``{"recall", "support"}`` on the test split, in class order; recall is
    None for a class with no test sample."""
    from sklearn.metrics import recall_score

    labels = np.arange(len(names))
    recall = recall_score(y_true, pred, labels=labels, average=None, zero_division=np.nan)
    support = np.bincount(y_true, minlength=len(names))
    return {name: {"recall": _num(recall[c]), "support": int(support[c])} for c, name in enumerate(names)}


@dataclass(frozen=True)
class Mistakes:
    """The refit's errors on the test split: the most confident mistakes (dataset rows,
    most confident first, with their labels and probabilities) and per-class recall."""

    names: list[str]
    rows: np.ndarray  # dataset rows (indices into dataset.X)
    true: np.ndarray
    pred: np.ndarray
    confidence: np.ndarray  # the predicted class's probability
    p_true: np.ndarray  # the true class's probability
    n_wrong: int
    n_test: int
    recall: dict[str, dict[str, Any]]

    def listing(self, n: int | None = None) -> list[dict[str, Any]]:
        """The first ``n`` mistakes (all when None) as plain data."""
        return [
            {
                "row": int(self.rows[i]),
                "true": self.names[int(self.true[i])],
                "predicted": self.names[int(self.pred[i])],
                "confidence": _num(self.confidence[i]),
                "p_true": _num(self.p_true[i]),
            }
            for i in range(len(self.rows) if n is None else min(n, len(self.rows)))
        ]

    def record(self) -> dict[str, Any]:
        """What the scoring record keeps (small: it lives in the study's user attrs)."""
        recall = self.recall
        if len(recall) > MAX_CLASSES_RECORDED:  # the full table is classification_report.json
            lowest = sorted(recall, key=lambda k: _lowest_first(recall[k]))[:N_LOWEST_RECORDED]
            recall = {k: recall[k] for k in recall if k in set(lowest)}
        shown = [{k: v for k, v in m.items() if k != "p_true"} for m in self.listing(N_RECORDED)]
        return {
            "per_class_recall": recall,
            "n_classes": len(self.names),
            "mistakes": {"count": self.n_wrong, "most_confident": shown},
        }


def find_mistakes(
    names: list[str], test_rows: np.ndarray, y_test: np.ndarray, proba: np.ndarray, k: int = N_LOGGED
) -> Mistakes:
    """The ``k`` most confident mistakes of the predictions ``proba`` on the test split
    (``test_rows``: the dataset rows of ``y_test``), and the per-class recall."""
    pred = proba.argmax(axis=1)
    at = most_confident_wrong(y_test, proba, k)
    return Mistakes(
        names=list(names),
        rows=np.asarray(test_rows)[at],
        true=y_test[at],
        pred=pred[at],
        confidence=proba[at, pred[at]],
        p_true=proba[at, y_test[at]],
        n_wrong=int(np.sum(pred != y_test)),
        n_test=len(y_test),
        recall=per_class_recall(y_test, pred, names),
    )


def log_mistakes(tracker: Any, run_id: str, mistakes: Mistakes, dataset: Any) -> list[str]:
    """Log the mistakes under ``errors/`` on the refit's MLflow run: a JSON list, and an
    image grid (image data) or a CSV of the feature rows (tables). Nothing is logged when
    the model made no mistake. Never raises: a missing picture must not undo a scoring.
    Returns the artifact paths logged."""
    client = tracker.client
    logged: list[str] = []
    try:
        client.set_tag(run_id, "tuner.test_mistakes", f"{mistakes.n_wrong} of {mistakes.n_test}")
        if not mistakes.n_wrong:
            return logged
        path = f"{ARTIFACT_DIR}/most_confident_mistakes.json"
        listing = {"n_test": mistakes.n_test, "n_wrong": mistakes.n_wrong, "mistakes": mistakes.listing()}
        client.log_dict(run_id, listing, path)
        logged.append(path)
        if dataset.is_image:
            from tuner.views.plots import mistakes_figure

            path = f"{ARTIFACT_DIR}/most_confident_mistakes.png"
            titles = [
                f"row {m['row']}\ntrue {m['true']} / pred {m['predicted']} (p={m['confidence']:.2f})"
                for m in mistakes.listing()
            ]
            client.log_figure(run_id, mistakes_figure(dataset.X[mistakes.rows], titles), path)
        else:
            path = f"{ARTIFACT_DIR}/most_confident_mistakes.csv"
            client.log_text(run_id, mistakes_csv(mistakes, dataset.X, dataset.feature_names), path)
        logged.append(path)
    except Exception as e:
        tracker.warn(f"could not log the test split's most confident mistakes: {e}")
    return logged


def mistakes_csv(mistakes: Mistakes, X: np.ndarray, feature_names: list[str]) -> str:
    """The mistakes as CSV: dataset row, true and predicted class, confidence, the true
    class's probability, then the row's features (as loaded, before normalization)."""
    import csv
    import io

    n_features = int(np.prod(X.shape[1:]))
    if len(feature_names) != n_features:
        feature_names = [f"f{j}" for j in range(n_features)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["row", "true", "predicted", "confidence", "p_true", *feature_names])
    for m in mistakes.listing():
        features = X[m["row"]].reshape(-1)
        writer.writerow(
            [
                m["row"],
                m["true"],
                m["predicted"],
                m["confidence"],
                m["p_true"],
                *(f"{v:.6g}" for v in features),
            ]
        )
    return out.getvalue()


def _num(x: Any) -> float | None:
    """A probability or recall for JSON, to 4 places; None when not finite."""
    x = float(x)
    return round(x, 4) if math.isfinite(x) else None


def _lowest_first(r: dict[str, Any]) -> tuple[bool, float]:
    return (r["recall"] is None, r["recall"] if r["recall"] is not None else 0.0)
