"""Scoring with scikit-learn's metrics: classification from predicted class
probabilities, regression from predicted numbers in the user's units."""

from __future__ import annotations

import numpy as np

from tuner.config.sections import CLASSIFICATION_METRICS, REGRESSION_METRICS  # the study file's names

__all__ = ["CLASSIFICATION_METRICS", "DIRECTION", "REGRESSION_METRICS", "better", "score", "worst"]

DIRECTION = {
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1_macro": "maximize",
    "roc_auc": "maximize",
    "log_loss": "minimize",
    "rmse": "minimize",
    "mae": "minimize",
    "r2": "maximize",
    "mape": "minimize",
}


def score(metric: str, y_true: np.ndarray, proba: np.ndarray) -> float:
    """``metric`` of probabilities ``proba`` (N, C) against labels ``y_true``, or for a
    regression metric of predictions ``proba`` (N,) against numbers ``y_true``."""
    from sklearn import metrics as m

    if metric in REGRESSION_METRICS:
        return _regression(metric, y_true, proba)
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


def _regression(metric: str, y_true: np.ndarray, pred: np.ndarray) -> float:
    from sklearn import metrics as m

    if metric == "rmse":
        return float(m.root_mean_squared_error(y_true, pred))
    if metric == "mae":
        return float(m.mean_absolute_error(y_true, pred))
    if metric == "r2":
        return float(m.r2_score(y_true, pred))
    return float(m.mean_absolute_percentage_error(y_true, pred))
