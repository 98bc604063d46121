"""The skill scale the diagnoses read scores on: 0 at chance, 1 at a perfect score,
so one set of thresholds serves every metric and class count."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["chance_level", "skill"]


def chance_level(metric: str, counts: Any) -> float:
    """What a naive predictor scores, given the class counts of the training data.

    accuracy: always the majority class; balanced accuracy: 1/C; ROC AUC: 0.5;
    macro F1: guessing classes at random; log loss: predicting the class frequencies.
    """
    p = np.asarray(counts, dtype=np.float64)
    p = p / p.sum()
    c = len(p)
    if metric == "accuracy":
        return float(p.max())
    if metric == "balanced_accuracy":
        return 1.0 / c
    if metric == "roc_auc":
        return 0.5
    if metric == "f1_macro":
        return float(np.mean(2 * p * (1 / c) / (p + 1 / c)))
    if metric == "log_loss":
        q = p[p > 0]
        return float(-(q * np.log(q)).sum())
    raise ValueError(f"unknown metric {metric!r}")


def skill(value: float, metric: str, chance: float) -> float:
    """``value`` on a scale where chance is 0 and a perfect score is 1."""
    if metric == "log_loss":
        return 1.0 - value / chance if chance > 0 else 0.0
    return (value - chance) / (1.0 - chance) if chance < 1 else 0.0
