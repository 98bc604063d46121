"""What the target column says about the task: pre-flight checks of ``ds.y``.

For ``task: regression`` (``check_regression_target``), blocking: NaN/inf targets; a
constant target; ``data.target_transform: log1p`` with a target at or below -1.
Warnings, each read on the target as the network learns it (after
``data.target_transform``, whose default is ``standardize``): a scale far from 1
(``TARGET_SCALE_HIGH``, ``TARGET_SCALE_LOW``) with ``target_transform: none``; heavy
skew (``SKEW_LIMIT``); whole-number targets with few distinct values (``LABEL_LIKE``),
which look like class labels; and zero targets under ``objective.metric: mape``.

For classification (``check_class_target``), the reverse: many classes, all named by
numbers, each seen a handful of times, look like a numeric quantity.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.errors import DataError

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = [
    "LABEL_LIKE",
    "NUMERIC_CLASSES",
    "SKEW_LIMIT",
    "SPARSE_CLASS",
    "TARGET_SCALE_HIGH",
    "TARGET_SCALE_LOW",
    "ZERO_TARGET",
    "check_class_target",
    "check_regression_target",
    "skewness",
]

TARGET_SCALE_HIGH = 1e3  # a target |mean| or std above this is far from unit scale
TARGET_SCALE_LOW = 1e-3  # a (nonzero) target std below this is too
SKEW_LIMIT = 2.0  # |sample skewness| above this: a few large values dominate the loss
LABEL_LIKE = 20  # whole-number targets with at most this many distinct values look like labels
ZERO_TARGET = 1e-8  # |y| below this is zero for MAPE, which divides by it
NUMERIC_CLASSES = 50  # more classes than this, all named by numbers, may be a quantity
SPARSE_CLASS = 5  # ... when the median class holds fewer samples than this
SHOWN = 5  # row indices or values quoted in a message


def check_regression_target(config: StudyConfig, ds: Any) -> list[str]:
    """Blocking checks on a regression target; returns the warnings.

    Args:
        config: the study (``data.target_transform``, ``objective.metric``).
        ds: the loaded dataset, ``ds.y`` the target in the user's units.

    Returns:
        Warnings about the target's scale, skew, label-like values and zeros under MAPE.

    Raises:
        DataError: NaN/inf targets, a constant target, or ``target_transform: log1p``
            with a target value at or below -1.
    """
    y = np.asarray(ds.y, dtype=np.float64)
    transform = config.data.target_transform or "standardize"
    _block(ds.source, y, transform)
    learned = np.log1p(y) if transform == "log1p" else y  # what the network is fit to
    found = (
        _scale(y, transform),
        _skew(y, learned, transform),
        _label_like(y),
        _mape_zeros(y, config.objective.metric),
    )
    return [w for w in found if w]


def _block(source: str, y: np.ndarray, transform: str) -> None:
    """Raise ``DataError`` on a target no regression can be fit to."""
    bad = np.flatnonzero(~np.isfinite(y))
    if len(bad):
        raise DataError(
            f"{source}: {len(bad)} NaN/inf target values (first rows: {bad[:SHOWN].tolist()}); "
            "drop or impute those rows before tuning"
        )
    if y.min() == y.max():
        raise DataError(
            f"{source}: the target holds one value ({y[0]:.6g}) on all {len(y)} samples, so there "
            "is nothing to learn; check that the target column is the right one (data.target for "
            "a .csv)"
        )
    low = np.flatnonzero(y <= -1)
    if transform == "log1p" and len(low):
        raise DataError(
            f"data.target_transform log1p needs every target value above -1 (log1p is undefined "
            f"at or below it), but {len(low)} are not (min {y.min():.6g}, first rows: "
            f"{low[:SHOWN].tolist()}); use data.target_transform: standardize (the default)"
        )


def _scale(y: np.ndarray, transform: str) -> str | None:
    # standardize (and log1p, which standardizes after) fits the scale away on each
    # fold's training rows: only a target learned as it is can make the loss explode.
    if transform != "none":
        return None
    mean, std = float(y.mean()), float(y.std())
    if abs(mean) <= TARGET_SCALE_HIGH and TARGET_SCALE_LOW <= std <= TARGET_SCALE_HIGH:
        return None
    return (
        f"target far from unit scale: mean {mean:.4g} and std {std:.4g} (limits: |mean| or std "
        f"{TARGET_SCALE_HIGH:g}, std at least {TARGET_SCALE_LOW:g}), and data.target_transform "
        "is none, so the network learns it in these units: the loss and its gradients may "
        "explode (or vanish). Use data.target_transform: standardize (the default)"
    )


def skewness(values: np.ndarray) -> float:
    """Sample skewness, ``E[(v - mean)^3] / std^3`` (``scipy.stats.skew`` with ``bias=True``)."""
    centered = values - values.mean()
    var = float(np.mean(centered**2))
    return float(np.mean(centered**3)) / var**1.5 if var > 0 else 0.0


def _skew(y: np.ndarray, learned: np.ndarray, transform: str) -> str | None:
    skew = skewness(learned)
    if abs(skew) <= SKEW_LIMIT:
        return None
    after = " after data.target_transform log1p" if transform == "log1p" else ""
    text = (
        f"target heavily skewed: sample skewness {skew:.2f}{after} (limit {SKEW_LIMIT:g}); "
        "a few extreme targets dominate a squared-error loss and rmse."
    )
    if transform != "log1p" and y.min() >= 0:
        return text + (
            f" All values are >= 0 (min {y.min():.4g}, max {y.max():.4g}): consider "
            "data.target_transform: log1p"
        )
    return text + " Consider training.loss: huber or mae, or objective.metric: mae"


def _label_like(y: np.ndarray) -> str | None:
    if not np.all(y == np.round(y)):
        return None
    values = np.unique(y)
    if len(values) > LABEL_LIKE:
        return None
    shown = ", ".join(f"{v:g}" for v in values[:SHOWN]) + (", ..." if len(values) > SHOWN else "")
    return (
        f"target looks like class labels: all {len(y)} values are whole numbers, only "
        f"{len(values)} distinct ({shown}; limit {LABEL_LIKE}); if they name classes use "
        "task: classification; if they are counts or ratings, task: regression is right"
    )


def _mape_zeros(y: np.ndarray, metric: str) -> str | None:
    if metric != "mape":
        return None
    zeros = np.flatnonzero(np.abs(y) < ZERO_TARGET)
    if not len(zeros):
        return None
    return (
        f"objective.metric mape divides by the target, but {len(zeros)} targets are zero (|y| < "
        f"{ZERO_TARGET:g}; first rows: {zeros[:SHOWN].tolist()}): MAPE is undefined there and "
        "explodes near it. Use objective.metric: rmse or mae"
    )


def check_class_target(ds: Any, counts: np.ndarray) -> list[str]:
    """The reverse of ``_label_like``: class labels that look like a numeric quantity.

    Args:
        ds: the loaded dataset, ``ds.classes`` the class names.
        counts: samples per class, ``np.bincount(ds.y)``.

    Returns:
        One warning when more than ``NUMERIC_CLASSES`` classes, all named by numbers,
        hold a median of fewer than ``SPARSE_CLASS`` samples each; else none.
    """
    names = list(ds.classes)
    if len(names) <= NUMERIC_CLASSES or not all(_is_number(n) for n in names):
        return []
    median = float(np.median(counts))
    if median >= SPARSE_CLASS:
        return []
    return [
        f"class labels look like a numeric quantity, not classes: {len(names)} classes, every "
        f"name a number ({', '.join(names[:SHOWN])}, ...), with a median of {median:g} samples "
        f"per class (limits: {NUMERIC_CLASSES} classes, {SPARSE_CLASS} per class); a classifier "
        "learns nothing of a class seen a handful of times, nor that 3 lies between 2 and 4. If "
        "the target is a measurement, consider task: regression"
    ]


def _is_number(name: str) -> bool:
    try:
        return math.isfinite(float(name))
    except ValueError:
        return False
