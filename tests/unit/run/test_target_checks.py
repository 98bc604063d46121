"""Pre-flight checks of the target: for regression, the blocking problems (NaN/inf, a
constant target, log1p below -1) and the warnings (scale, skew, label-like values, zeros
under MAPE), each naming its evidence and fix; for classification, numeric class names
that look like a quantity; and the leakage screen on a regression target's quantile bins."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from objectives.dataset import Dataset
from objectives.splits import make_splits
from tests.conftest import tiny_study
from tuner.config import validate_config
from tuner.errors import DataError
from tuner.run.preflight import check_dataset, check_splits
from tuner.run.target_checks import check_class_target, check_regression_target, skewness


def config(**over: Any) -> Any:
    return validate_config(tiny_study(**over), base_dir=Path("."), source="study.yaml")


def regression_config(**over: Any) -> Any:
    doc = {"task": "regression", "objective.metric": "rmse", "data.source": "data.npz", **over}
    return config(**doc)


def regression_table(y: np.ndarray, features: int = 4, seed: int = 0) -> Dataset:
    X = np.random.default_rng(seed).normal(size=(len(y), features)).astype(np.float32)
    return Dataset(X=X, y=np.asarray(y, dtype=np.float64), classes=[], source="data.npz", task="regression")


def clean_target(n: int = 300) -> np.ndarray:
    return np.random.default_rng(1).normal(10.0, 3.0, size=n)


def about(warnings: list[str], what: str) -> list[str]:
    return [w for w in warnings if w.startswith(what)]


@pytest.mark.parametrize("transform", [None, "none", "standardize"])
def test_a_clean_regression_target_passes_without_warnings(transform: str | None) -> None:
    ds = regression_table(clean_target())
    cfg = regression_config(**{"data.target_transform": transform})
    splits = make_splits(ds.y, test_size=0.2, folds=2, seed=0, task="regression")
    assert check_dataset(cfg, ds) == [] and check_splits(cfg, ds, splits) == []


def test_nan_or_inf_targets_block_naming_the_rows() -> None:
    y = clean_target()
    y[[4, 11, 30]] = [np.nan, np.inf, -np.inf]
    with pytest.raises(
        DataError, match=r"3 NaN/inf target values \(first rows: \[4, 11, 30\]\); drop or impute those rows"
    ):
        check_dataset(regression_config(), regression_table(y))


def test_a_constant_target_blocks() -> None:
    with pytest.raises(DataError, match=r"the target holds one value \(7\) on all 50 samples.*data.target"):
        check_dataset(regression_config(), regression_table(np.full(50, 7.0)))


def test_log1p_with_targets_at_or_below_minus_one_blocks_and_suggests_standardize() -> None:
    y = clean_target() - 10.0  # centred on 0: some values are below -1
    below = int((y <= -1).sum())
    cfg = regression_config(**{"data.target_transform": "log1p"})
    with pytest.raises(
        DataError, match=rf"log1p needs every target value above -1.*but {below} are not"
    ) as e:
        check_regression_target(cfg, regression_table(y))
    assert "data.target_transform: standardize" in str(e.value)
    # the same target is fine for the default transform
    assert check_regression_target(regression_config(), regression_table(y)) == []


@pytest.mark.parametrize(("factor", "offset"), [(1e5, 0.0), (1.0, 5e4), (1e-5, 0.0)])
def test_a_target_far_from_unit_scale_warns_only_when_learned_untransformed(
    factor: float, offset: float
) -> None:
    ds = regression_table(np.random.default_rng(2).normal(size=300) * factor + offset)
    untransformed = check_regression_target(regression_config(**{"data.target_transform": "none"}), ds)
    (warning,) = about(untransformed, "target far from unit scale")
    assert "data.target_transform is none" in warning
    assert "data.target_transform: standardize" in warning and "explode" in warning
    # standardize (the default) fits the scale away: nothing to say
    for transform in (None, "standardize"):
        cfg = regression_config(**{"data.target_transform": transform})
        assert about(check_regression_target(cfg, ds), "target far") == []


def test_skewness_matches_scipy() -> None:
    from scipy.stats import skew

    values = np.random.default_rng(3).lognormal(size=500)
    assert skewness(values) == pytest.approx(float(skew(values)))
    assert skewness(np.full(5, 2.0)) == 0.0


def test_a_skewed_positive_target_suggests_log1p_unless_already_set() -> None:
    ds = regression_table(np.random.default_rng(4).lognormal(0.0, 1.2, size=400))
    (warning,) = about(check_regression_target(regression_config(), ds), "target heavily skewed")
    assert f"sample skewness {skewness(ds.y):.2f}" in warning
    assert "data.target_transform: log1p" in warning
    # log1p is what the network learns then, and log1p of it is not skewed
    cfg = regression_config(**{"data.target_transform": "log1p"})
    assert about(check_regression_target(cfg, ds), "target heavily skewed") == []


def test_a_skewed_target_with_negative_values_suggests_a_robust_loss_not_log1p() -> None:
    ds = regression_table(np.random.default_rng(4).lognormal(0.0, 1.2, size=400) - 3.0)
    (warning,) = about(check_regression_target(regression_config(), ds), "target heavily skewed")
    assert "log1p" not in warning and "training.loss: huber" in warning


def test_whole_number_targets_with_few_values_look_like_class_labels() -> None:
    y = (np.arange(200) % 4).astype(np.float64)
    (warning,) = about(check_regression_target(regression_config(), regression_table(y)), "target looks like")
    assert "only 4 distinct (0, 1, 2, 3; limit 20)" in warning
    assert "task: classification" in warning


def test_many_whole_number_values_or_fractions_do_not_look_like_labels() -> None:
    counts = np.random.default_rng(6).integers(0, 500, size=300).astype(np.float64)  # hundreds of values
    fractions = (np.arange(300) % 4) + 0.5
    for y in (counts, fractions):
        assert about(check_regression_target(regression_config(), regression_table(y)), "target looks") == []


def test_zero_targets_under_mape_warn_naming_the_rows() -> None:
    y = clean_target()
    y[[3, 8]] = [0.0, 1e-12]
    ds = regression_table(y)
    (warning,) = about(
        check_regression_target(regression_config(**{"objective.metric": "mape"}), ds), "objective"
    )
    assert "2 targets are zero" in warning and "first rows: [3, 8]" in warning
    assert "objective.metric: rmse or mae" in warning
    # rmse does not divide by the target
    assert check_regression_target(regression_config(), ds) == []


def test_mape_without_zero_targets_is_clean() -> None:
    cfg = regression_config(**{"objective.metric": "mape"})
    assert check_regression_target(cfg, regression_table(clean_target())) == []


def test_a_table_model_check_still_runs_for_regression() -> None:
    with pytest.raises(DataError, match="use model.family: mlp"):
        check_dataset(regression_config(**{"model.family": "cnn"}), regression_table(clean_target()))


def classes_table(n_classes: int, per_class: int, names: list[str] | None = None) -> Dataset:
    n = n_classes * per_class
    X = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    y = np.arange(n, dtype=np.int64) % n_classes
    return Dataset(X=X, y=y, classes=names or [f"{c * 0.5:g}" for c in range(n_classes)], source="data.npz")


def test_many_sparse_numeric_classes_look_like_a_quantity() -> None:
    warnings = check_dataset(config(), classes_table(60, 2))
    (warning,) = warnings  # balanced classes: no imbalance warning beside it
    assert warning.startswith("class labels look like a numeric quantity")
    assert "60 classes" in warning and "(0, 0.5, 1, 1.5, 2, ...)" in warning
    assert "median of 2 samples per class" in warning and "consider task: regression" in warning


@pytest.mark.parametrize(
    ("n_classes", "per_class", "names"),
    [
        (60, 2, [f"c{c}" for c in range(60)]),  # named, not numbers
        (60, 6, None),  # enough samples per class
        (50, 2, None),  # not more than 50 classes
    ],
)
def test_numeric_classes_that_can_be_learned_raise_nothing(
    n_classes: int, per_class: int, names: list[str] | None
) -> None:
    ds = classes_table(n_classes, per_class, names)
    assert check_class_target(ds, np.bincount(ds.y)) == [] and check_dataset(config(), ds) == []


def test_classification_still_checks_its_labels_and_imbalance() -> None:
    ds = classes_table(3, 40)
    ds.y[ds.y == 1] = 0
    with pytest.raises(DataError, match=r"class 1 has no samples"):
        check_dataset(config(), ds)
    y = np.array([0] * 40 + [1] * 40 + [2] * 5, dtype=np.int64)
    ds = Dataset(X=classes_table(1, 85).X, y=y, classes=["a", "b", "c"], source="data.npz")
    (warning,) = check_dataset(config(), ds)
    assert warning.startswith("class imbalance: class 0 (a) has 40 samples and class 2 (c) 5")


@pytest.mark.parametrize(("n", "bins"), [(2100, "decile bins"), (440, "2 quantile bins")])
def test_a_column_copying_a_regression_target_leaks_on_its_quantile_bins(n: int, bins: str) -> None:
    # 440 rows is the size of sklearn's diabetes: deciles there would miss even a copy
    y = clean_target(n)
    ds = regression_table(y, features=5)
    ds.X[:, 2] = y
    splits = make_splits(y, test_size=0.2, folds=2, seed=0, task="regression")
    (warning,) = about(check_splits(regression_config(), ds, splits), "possible target leakage")
    assert re.search(
        rf"column 2 \(skill (0\.9[89]\d|1\.000)\) alone predicts the target's {bins} near", warning
    )
    assert f"balanced-accuracy skill on the target's {bins}" in warning


def test_deciles_would_miss_a_copy_of_a_small_regression_target() -> None:
    """Why the bins shrink with the rows: the screen on 350 rows' deciles misses a copy."""
    from objectives.splits import quantile_bins
    from tuner.run.leakage import leaking_columns

    y = clean_target(350)
    assert leaking_columns(y[:, None], quantile_bins(y, 10), np.array([0]), seed=0) == []
    assert leaking_columns(y[:, None], quantile_bins(y, 2), np.array([0]), seed=0) != []
