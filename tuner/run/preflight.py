"""Pre-flight checks on the loaded data and its splits, before any storage or trial exists.

Blocking problems raise ``DataError`` (exit status 2) naming the problem, the
evidence and the fix; warnings are returned as strings for the caller to print and
log on the study's MLflow run (``log_warnings``).

Blocking: NaN/inf features; labels outside 0..C-1 or a class with no samples; the
cnn family on tabular data; a class with too few samples for the folds (raised by
``objectives.splits.make_splits``); exact duplicates shared by the test split and the
rest above ``data.max_test_duplicates``.

Warnings: a smaller share of such duplicates; class imbalance above
``IMBALANCE_RATIO``; features far from normalized (``SCALE_LIMIT``, ``SCALE_SPREAD``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.errors import DataError

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = [
    "IMBALANCE_RATIO",
    "SCALE_LIMIT",
    "SCALE_SPREAD",
    "check_dataset",
    "check_splits",
    "log_warnings",
]

IMBALANCE_RATIO = 3.0  # largest / smallest class count above which the data is imbalanced
SCALE_LIMIT = 50.0  # a feature |mean| or std above this is far from normalized
SCALE_SPREAD = 1000.0  # largest / smallest per-feature std above this: scales differ wildly
SHOWN = 5  # indices quoted in a message


def check_dataset(config: StudyConfig, ds: Any) -> list[str]:
    """Blocking checks on ``ds`` for ``config``; returns the warnings.

    Raises:
        DataError: NaN/inf features, labels outside 0..C-1, an empty class, or
            ``model.family: cnn`` on a table.
    """
    X, y = ds.X, ds.y
    if len(y) == 0:
        raise DataError(f"{ds.source} holds no samples")
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(X), -1).any(axis=1))
        raise DataError(
            f"{ds.source}: {int(bad.sum())} NaN/inf feature values in {len(rows)} samples "
            f"(first rows: {rows[:SHOWN].tolist()}); impute or drop them before tuning"
        )
    n_classes = max(len(ds.classes), 1)
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= n_classes:
        wrong = np.flatnonzero((y < 0) | (y >= n_classes))
        i = int(wrong[0]) if len(wrong) else 0
        raise DataError(
            f"{ds.source}: labels must be integers 0..{n_classes - 1} (one per class), but "
            f"y[{i}] = {y[i].item()!r} ({len(wrong)} such labels); relabel the classes to 0..C-1"
        )
    counts = np.bincount(y, minlength=n_classes)
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise DataError(
            f"{ds.source}: labels must be 0..C-1 with every class present, but class "
            f"{int(empty[0])} has no samples (counts: {counts.tolist()}); relabel to 0..C-1"
        )
    family = config.model.family
    if family in ("cnn", "resnet18") and not config.model.factory and not ds.is_image:
        raise DataError(
            f"model.family {family} needs images (N, C, H, W), but {ds.source} is a table of "
            f"{ds.X.shape[1]} features: use model.family: mlp"
        )
    augmented = [n for n in config.search_space.names if n.startswith("augment.")]
    if augmented and not ds.is_image:
        raise DataError(
            f"search_space.{augmented[0]} augments images, but {ds.source} is a table of "
            f"{ds.X.shape[1]} features; remove the augment.* parameters"
        )
    return [w for w in (_imbalance(config, ds, counts), _scale(config, ds)) if w]


def _name(ds: Any, c: int) -> str:
    return f"class {c}" + (f" ({ds.classes[c]})" if ds.classes and ds.classes[c] != str(c) else "")


def _imbalance(config: StudyConfig, ds: Any, counts: np.ndarray) -> str | None:
    big, small = int(counts.argmax()), int(counts.argmin())
    ratio = counts[big] / counts[small]
    if ratio <= IMBALANCE_RATIO:
        return None
    text = (
        f"class imbalance: {_name(ds, big)} has {int(counts[big])} samples and {_name(ds, small)} "
        f"{int(counts[small])}, a ratio of {ratio:.1f} (above {IMBALANCE_RATIO:g})."
    )
    if config.objective.metric == "accuracy":
        text += (
            " objective.metric is plain accuracy, which a model can score well on by ignoring "
            "the rare classes: use balanced_accuracy or f1_macro,"
        )
    else:
        text += f" objective.metric {config.objective.metric} accounts for it;"
    return text + " and consider searching class_weight: {categorical: [none, balanced]}"


def _scale(config: StudyConfig, ds: Any) -> str | None:
    X = ds.X.astype(np.float64, copy=False)
    # per feature for tables, per channel for images: what input normalization would use
    axes = (0, 2, 3) if X.ndim == 4 else (0,)
    mean = np.abs(X.mean(axis=axes)).ravel()
    std = X.std(axis=axes).ravel()
    big = max(float(mean.max()), float(std.max()))
    positive = std[std > 0]
    spread = float(positive.max() / positive.min()) if len(positive) else 1.0
    if big <= SCALE_LIMIT and spread <= SCALE_SPREAD:
        return None
    unit = "channel" if X.ndim == 4 else "feature"
    i = int(np.argmax(np.maximum(mean, std)))
    text = (
        f"features are far from normalized: {unit} {i} has mean {X.mean(axis=axes).ravel()[i]:.4g} "
        f"and std {std[i]:.4g}, and the {unit} stds span a factor of {spread:.3g} "
        f"(limits: |mean| or std {SCALE_LIMIT:g}, spread {SCALE_SPREAD:g}); un-normalized inputs "
        "are the classic cause of exploding gradients."
    )
    if config.data.normalize:
        return text + (
            " data.normalize is on: the model standardizes its inputs with training-fold "
            "statistics, so training is protected"
        )
    return text + " data.normalize is OFF: set data.normalize: true (or scale the data yourself)"


def _row_hashes(X: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(X.reshape(len(X), -1))
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def check_splits(config: StudyConfig, ds: Any, splits: Any) -> list[str]:
    """Leakage check: exact duplicate samples shared by the test split and the rest.

    Raises:
        DataError: when the share of test samples with a duplicate outside the test
            split is above ``data.max_test_duplicates``.
    """
    hashes = _row_hashes(ds.X)
    outside: dict[bytes, int] = {}
    for i in splits.trainval:
        outside.setdefault(hashes[i], int(i))
    shared = [(int(i), outside[hashes[i]]) for i in splits.test if hashes[i] in outside]
    if not shared:
        return []
    n_test = len(splits.test)
    share = len(shared) / n_test
    pairs = ", ".join(f"{t}~{o}" for t, o in shared[:SHOWN])
    evidence = (
        f"{len(shared)} of {n_test} test samples ({share:.1%}) are exact duplicates of samples "
        f"outside the test split (test~other row indices: {pairs})"
    )
    limit = config.data.max_test_duplicates
    if share > limit:
        raise DataError(
            f"leakage: {evidence}, above data.max_test_duplicates={limit:g}; the test score would "
            "measure memory, not generalization. Deduplicate the data (e.g. drop repeated rows) "
            "or raise data.max_test_duplicates if the duplicates are genuine"
        )
    return [f"possible leakage: {evidence}; deduplicate the data for an honest test score"]


def log_warnings(tracker: Any, warnings: list[str]) -> None:
    """Put the pre-flight warnings on the study's parent MLflow run: a text
    artifact ``preflight_warnings.txt`` and a tag ``tuner.preflight_warnings``."""
    run_id = getattr(tracker, "parent_id", None)
    if not warnings or not run_id:
        return
    try:
        tracker.client.log_text(run_id, "\n\n".join(warnings) + "\n", "preflight_warnings.txt")
        tracker.client.set_tag(
            run_id, "tuner.preflight_warnings", f"{len(warnings)}: " + " | ".join(warnings)[:4000]
        )
    except Exception as e:  # tracking must never stop the study
        tracker.warn(f"could not log the pre-flight warnings to MLflow: {e}")
