"""Scoring with scikit-learn's metrics, from predicted class probabilities."""

from __future__ import annotations

import numpy as np

__all__ = ["DIRECTION", "better", "score", "worst"]

DIRECTION = {
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1_macro": "maximize",
    "roc_auc": "maximize",
    "log_loss": "minimize",
}


def score(metric: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """``metric`` of probabilities ``proba`` (N, C) against labels ``y_true``."""
    from sklearn import metrics as m

    n_classes = proba.shape[1]
    # Rows must sum to 1 for sklearn; a float32 softmax can be off by ~1e-7.
    p = proba / proba.sum(axis=1, keepdims=True)
    if metric == "log_loss":
        return float(m.log_loss(y_true, p, labels=np.arange(n_classes)))
    if metric == "roc_auc":
        if n_classes == 2:
            return float(m.roc_auc_score(y_true, p[:, 1]))
        return float(m.roc_auc_score(y_true, p, multi_class="ovr", labels=np.arange(n_classes)))
    pred = proba.argmax(axis=1)
    if metric == "accuracy":
        return float(m.accuracy_score(y_true, pred))
    if metric == "balanced_accuracy":
        return float(m.balanced_accuracy_score(y_true, pred))
    if metric == "f1_macro":
        return float(m.f1_score(y_true, pred, average="macro", labels=np.arange(n_classes)))
    raise ValueError(f"unknown metric {metric!r}")


def better(a: float, b: float, metric: str) -> bool:
    """Whether score ``a`` beats score ``b``."""
    return a < b if DIRECTION[metric] == "minimize" else a > b


def worst(metric: str) -> float:
    return float("inf") if DIRECTION[metric] == "minimize" else float("-inf")
