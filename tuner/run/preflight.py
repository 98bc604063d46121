"""Pre-flight checks on the loaded data and its splits, before any storage or trial exists.

Blocking problems raise ``DataError`` (exit status 2) naming the problem, the
evidence and the fix; warnings are returned as strings for the caller to print and
log on the study's MLflow run (``log_warnings``).

Blocking: NaN/inf features; for classification, labels outside 0..C-1 or a class
with no samples; for regression (``tuner.run.target_checks``), NaN/inf targets, a
constant target, or ``data.target_transform: log1p`` with a target at or below -1;
the cnn family on tabular data; a class with too few samples for the folds (raised
by ``objectives.splits.make_splits``); exact duplicates shared by the test split and
the rest above ``data.max_test_duplicates``.

Warnings: a smaller share of such duplicates; for classification, class imbalance
above ``IMBALANCE_RATIO`` and numeric class names that look like a quantity (many
sparse classes: consider ``task: regression``); for regression, a target far from
unit scale learned untransformed, a heavily skewed target, whole-number targets that
look like class labels, and zero targets under ``objective.metric: mape``; features
far from normalized (``SCALE_LIMIT``, ``SCALE_SPREAD``); and, for tables (not images,
whose constant border pixels are normal), on the non-test rows only: constant
columns, columns that repeat another, and a column that alone predicts the label
(for regression, the target's quantile bins: deciles, fewer below
``LEAK_ROWS_PER_BIN`` rows a bin) near-perfectly (target leakage, ``tuner.run.leakage``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

from objectives.splits import QUANTILE_BINS, quantile_bins
from tuner.errors import DataError
from tuner.run.leakage import LEAK_SKILL, leaking_columns
from tuner.run.target_checks import check_class_target, check_regression_target

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = [
    "IMBALANCE_RATIO",
    "LEAK_ROWS_PER_BIN",
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
COLUMNS_SHOWN = 10  # columns named in a message (short: "column 12")
LEAK_ROWS_PER_BIN = 160  # non-test rows per quantile bin of a regression target, leak screen


def check_dataset(config: StudyConfig, ds: Any) -> list[str]:
    """Blocking checks on ``ds`` for ``config``; returns the warnings.

    Raises:
        DataError: NaN/inf features; for classification, labels outside 0..C-1 or an
            empty class; for regression, a target no model can be fit to (see
            ``check_regression_target``); ``model.family: cnn`` on a table.
    """
    if len(ds.y) == 0:
        raise DataError(f"{ds.source} holds no samples")
    if not ds.streamed:  # streamed images are uint8 in [0, 255]: finite and in scale
        _finite_features(ds)
    if ds.is_regression:
        target = check_regression_target(config, ds)
    else:
        counts = _class_counts(ds)
        imbalance = _imbalance(config, ds, counts)
        target = ([imbalance] if imbalance else []) + check_class_target(ds, counts)
    _model_fits_data(config, ds)
    return target + [w for w in (None if ds.streamed else _scale(config, ds),) if w]


def _finite_features(ds: Any) -> None:
    X = ds.X
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(X), -1).any(axis=1))
        raise DataError(
            f"{ds.source}: {int(bad.sum())} NaN/inf feature values in {len(rows)} samples "
            f"(first rows: {rows[:SHOWN].tolist()}); impute or drop them before tuning"
        )


def _class_counts(ds: Any) -> np.ndarray:
    """Samples per class, after checking the labels are 0..C-1 with every class present."""
    y = ds.y
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
    return counts


def _model_fits_data(config: StudyConfig, ds: Any) -> None:
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
    return text + (
        " and consider searching class_weight: {categorical: [none, balanced]} or sampling: "
        "{categorical: [none, oversample, undersample]}"
    )


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
    """Checks that need the splits: exact duplicate samples shared by the test split and
    the rest (features only), and for tables the constant, repeated and label-leaking
    feature columns, read on the non-test rows only (the test labels stay sealed).

    Raises:
        DataError: when the share of test samples with a duplicate outside the test
            split is above ``data.max_test_duplicates``.
    """
    warnings = _test_duplicates(config, ds, splits)
    if not ds.is_image:  # constant border pixels are normal; one pixel is no leak
        warnings += _columns(config, ds, splits.trainval)
    return warnings


def _test_duplicates(config: StudyConfig, ds: Any, splits: Any) -> list[str]:
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


def _column(ds: Any, j: int) -> str:
    names = ds.feature_names
    return f"column {j} ({names[j]})" if j < len(names) and names[j] != str(j) else f"column {j}"


def _first(items: list[str], shown: int) -> str:
    """The first ``shown`` of ``items``, joined, and how many more there are."""
    more = f", and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def _columns(config: StudyConfig, ds: Any, trainval: np.ndarray) -> list[str]:
    """Constant, repeated and label-leaking columns of a table, on the non-test rows."""
    X = ds.X[trainval]
    lowest, highest = X.min(axis=0), X.max(axis=0)
    varies = lowest != highest
    warnings = []
    constant = np.flatnonzero(~varies).tolist()
    if constant:
        warnings.append(
            f"constant features: {len(constant)} of {X.shape[1]} columns hold one value on every "
            f"non-test row ({_first([_column(ds, j) for j in constant], COLUMNS_SHOWN)}); they carry no information: drop them"
        )
    copies = _repeated_columns(X, np.flatnonzero(varies), np.vstack([lowest, highest]))
    if copies:
        pairs = _first([f"{_column(ds, orig)} = {_column(ds, copy)}" for copy, orig in copies], SHOWN)
        warnings.append(
            f"duplicate features: {len(copies)} columns repeat an earlier column on every "
            f"non-test row ({pairs}); drop the copies: they add weights, not information"
        )
    labels, predicted = _leak_labels(ds, trainval)
    leaks = leaking_columns(X, labels, np.flatnonzero(varies), seed=config.seed)
    if leaks:
        warnings.append(_leak_warning(ds, leaks, predicted))
    return warnings


def _leak_labels(ds: Any, trainval: np.ndarray) -> tuple[np.ndarray, str]:
    """What the leakage screen predicts on the non-test rows, and its name: the class
    labels, or the integer codes of a regression target's quantile bins."""
    y = ds.y[trainval]
    if not ds.is_regression:
        return y, "the label"
    # The screen scores classes, held out: even an exact copy of the target loses the
    # rows near each bin edge, and 0.98 allows few. A copy is caught (20 draws of normal
    # targets) on 350 rows 0 times with deciles, 17 with 2 bins; on 700 rows 4 times with
    # deciles, 20 with 4 bins; deciles catch it every time from 1300 rows. Hence bins of
    # LEAK_ROWS_PER_BIN rows, deciles from 1600 rows.
    n_bins = int(np.clip(len(y) // LEAK_ROWS_PER_BIN, 2, QUANTILE_BINS))
    bins = quantile_bins(y, n_bins)
    found = int(bins.max()) + 1  # ties merge bins
    return bins, "the target's decile bins" if found == 10 else f"the target's {found} quantile bins"


def _leak_warning(ds: Any, leaks: list[tuple[int, float]], predicted: str) -> str:
    named = _first([f"{_column(ds, j)} (skill {s:.3f})" for j, s in leaks], SHOWN)
    on = f" on {predicted}" if ds.is_regression else ""
    return (
        f"possible target leakage: {named} "
        f"{'alone predicts' if len(leaks) == 1 else 'each alone predict'} {predicted} near-perfectly "
        f"(a one-feature tree, scored held out on the non-test rows; balanced-accuracy skill{on}, "
        f"0 = chance, 1 = perfect; limit {LEAK_SKILL:g}). A feature this predictive is usually "
        f"derived from {'the target' if ds.is_regression else 'the label'} (a copy, an ID assigned "
        "per class, a field filled in after the outcome): drop it if so, or the model will learn "
        "to read it and fail where it is missing"
    )


def _repeated_columns(X: np.ndarray, columns: np.ndarray, extremes: np.ndarray) -> list[tuple[int, int]]:
    """``(copy, original)`` pairs of ``columns`` equal on every row, the original first."""
    # Columns that agree on a few rows and on their extremes are hashed whole; the others
    # differ already, so a wide table is not copied column by column.
    probe = X[np.linspace(0, len(X) - 1, num=min(len(X), 16)).astype(int)]
    keys = np.vstack([probe, extremes])[:, columns] + np.float32(0)
    groups: dict[bytes, list[int]] = {}
    for j, key in zip(columns.tolist(), np.ascontiguousarray(keys.T), strict=True):
        groups.setdefault(key.tobytes(), []).append(j)
    copies = []
    for group in (g for g in groups.values() if len(g) > 1):
        first: dict[bytes, int] = {}
        for j, col in zip(group, np.ascontiguousarray(X[:, group].T) + np.float32(0), strict=True):
            key = hashlib.blake2b(col.tobytes(), digest_size=16).digest()  # -0.0 is 0.0 here
            if key in first:
                copies.append((j, first[key]))
            else:
                first[key] = j
    return sorted(copies)


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
