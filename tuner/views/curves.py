"""A trial's learning curves as the diagnosis reads them: per-epoch means over the folds
that reached each epoch, kept by a reporter wrapper while the trial trains."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

__all__ = ["CurveRecorder", "Curves"]


@dataclass(frozen=True)
class Curves:
    """Per-epoch means over the folds that reached that epoch."""

    train_score: list[float]
    val_score: list[float]
    train_loss: list[float]
    val_loss: list[float]
    grad_max: list[float]
    folds: int
    grad_ratio: list[float] | None = None  # first / last layer's gradient norm, when measured

    @property
    def epochs(self) -> int:
        return len(self.train_score)


class CurveRecorder:
    """Wraps a trial reporter: forwards every call and keeps a compact copy of the curves."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._epochs: dict[int, list[Any]] = defaultdict(list)
        self._folds: set[int] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def epoch(self, record: Any, step: int) -> None:
        self._epochs[record.epoch].append(record)
        self._folds.add(record.fold)
        self.inner.epoch(record, step)

    def fold_done(self, fold: int, score: float) -> None:
        self.inner.fold_done(fold, score)

    def curves(self) -> Curves:
        def mean(rows: list[Any], key: str) -> float:
            got = [getattr(r, key, None) for r in rows]  # grad_ratio may be absent or None
            vals = [float(v) for v in got if v is not None and math.isfinite(v)]
            return statistics.fmean(vals) if vals else math.nan

        epochs = [self._epochs[e] for e in sorted(self._epochs)]
        return Curves(
            train_score=[mean(r, "train_score") for r in epochs],
            val_score=[mean(r, "val_score") for r in epochs],
            train_loss=[mean(r, "train_loss") for r in epochs],
            val_loss=[mean(r, "val_loss") for r in epochs],
            grad_max=[mean(r, "grad_norm_max") for r in epochs],
            folds=len(self._folds),
            grad_ratio=[mean(r, "grad_ratio") for r in epochs],
        )
