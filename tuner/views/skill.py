"""The skill scale the diagnoses read scores on: 0 at chance, 1 at a perfect score,
so one set of thresholds serves every metric and class count.

For regression "chance" is the best constant prediction learned from the training target
(its mean for rmse and r2, its median for mae and mape), and skill is R²-like: for rmse it
is exactly R² against the training mean. Skill is not clipped: below 0 is worse than
that baseline, with no floor for log loss and the regression errors."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner.config.sections import REGRESSION_METRICS  # the rest are classification metrics

__all__ = [
    "REGRESSION_METRICS",
    "baseline_value",
    "baseline_words",
    "chance_for",
    "chance_level",
    "regression_chance",
    "skill",
]

MAPE_MIN_ABS = 1e-8  # targets closer to 0 are left out of the mape baseline (their error is unbounded)


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


def regression_chance(metric: str, y: np.ndarray) -> float:
    """What the best constant prediction scores on the training target ``y`` (the
    non-test rows, in the user's units).

    rmse: the population standard deviation (the RMSE of predicting the mean); mae: the
    mean absolute deviation from the median (the MAE of predicting the median); mape: the
    MAPE of predicting the median, over the rows with ``|y| >= MAPE_MIN_ABS`` (sklearn
    divides by ``max(|y|, eps)``, so a zero target alone would make the baseline
    astronomically large and every model look skilled); r2: 0.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    if metric == "r2":
        return 0.0
    if metric not in REGRESSION_METRICS:
        raise ValueError(f"unknown regression metric {metric!r}")
    if y.size == 0:
        raise ValueError("regression_chance needs at least one training target")
    if metric == "rmse":
        return float(np.std(y))
    median = float(np.median(y))
    if metric == "mae":
        return float(np.mean(np.abs(y - median)))
    kept = y[np.abs(y) >= MAPE_MIN_ABS]
    return float(np.mean(np.abs(kept - median) / np.abs(kept))) if kept.size else 0.0


def chance_for(metric: str, y: np.ndarray, n_classes: int) -> float:
    """The chance level of ``metric`` on the training target ``y``: the best constant's
    score for a regression metric, else the naive classifier's from the class counts."""
    if metric in REGRESSION_METRICS:
        return regression_chance(metric, y)
    return chance_level(metric, np.bincount(y, minlength=n_classes))


def skill(value: float, metric: str, chance: float) -> float:
    """``value`` on a scale where chance is 0 and a perfect score is 1.

    A score that chance already attains perfectly (a constant target, a single class)
    has no scale: its skill is 0.
    """
    if metric == "rmse":  # 1 - MSE / Var(y): R² against the training mean
        return 1.0 - (value / chance) ** 2 if chance > 0 else 0.0
    if metric in ("log_loss", "mae", "mape"):
        return 1.0 - value / chance if chance > 0 else 0.0
    # a higher-is-better score with 1 perfect; r2's chance is 0, so its skill is r2 itself
    return (value - chance) / (1.0 - chance) if chance < 1 else 0.0


def baseline_words(metric: str | None) -> str:
    """What skill 0 is, in the diagnoses' texts: chance, or for a regression metric the
    best constant it is measured against."""
    if metric in ("mae", "mape"):
        return "predicting the training median"
    if metric in REGRESSION_METRICS:
        return "predicting the training mean"
    return "chance"


# what a regression metric's chance level is, after "rmse 74.1 = "
_BASELINE_VALUE = {
    "rmse": "the target's sd",
    "mae": "its mean absolute deviation from the median",
    "mape": "the median's",
    "r2": "the mean's",
}


def baseline_value(metric: str, chance: float) -> str:
    """The chance level as the texts show it: ``0.1000``, or in the user's units with what
    it is (``rmse 74.1 = the target's sd``)."""
    if metric in _BASELINE_VALUE:
        return f"{metric} {chance:.4g} = {_BASELINE_VALUE[metric]}"
    return f"{chance:.4f}"
