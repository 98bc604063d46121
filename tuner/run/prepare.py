"""The study's first phase: load the data and make the splits (the held-out test split
fenced off, K folds on the rest), then run the pre-flight checks on them. Nothing
else exists yet: no storage, no study, no MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from objectives.dataset import Dataset
    from objectives.splits import Splits
    from tuner.config import StudyConfig

__all__ = ["Prepared", "prepare"]


@dataclass(frozen=True)
class Prepared:
    config: StudyConfig
    dataset: Dataset
    splits: Splits
    split_fp: str
    warnings: tuple[str, ...] = ()  # pre-flight warnings, logged on the study's MLflow run


def prepare(config: StudyConfig) -> Prepared:
    """Load the data and make the splits; blocking data problems raise ``DataError``."""
    from objectives.data import load_dataset
    from objectives.splits import make_splits
    from tuner.run.preflight import check_dataset, check_splits

    d = config.data
    ds = load_dataset(
        d.source, base_dir=config.base_dir, target=d.target, image_size=d.image_size,
        root=d.root, download=d.download, cache_limit_mb=d.cache_limit_mb, task=config.task,
        cache=d.cache, cache_dir=config.resolve_path(d.cache_dir or ".tuner-cache"),
    )  # fmt: skip
    warnings = check_dataset(config, ds)
    splits = make_splits(
        ds.y, test_size=d.test_size, folds=d.folds, seed=config.seed, task=config.task, split=d.split
    )
    warnings += check_splits(config, ds, splits)
    return Prepared(config, ds, splits, splits.fingerprint(ds.fingerprint()), tuple(warnings))
