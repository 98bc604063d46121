"""What a trial run's MLflow rows look like: per-epoch metrics keyed by fold, the
validation score at the pruner's step, and a failed trial's traceback (secrets masked).
Shared by the study process and the writer process."""

from __future__ import annotations

import math
import time
import traceback
from typing import Any

from tuner.secrets import mask_secrets

__all__ = ["MAX_BATCH", "epoch_metrics", "format_error", "now_ms"]

MAX_BATCH = 900  # MLflow accepts at most 1,000 metrics per log_batch


def now_ms() -> int:
    return int(time.time() * 1000)


def epoch_metrics(record: Any, step: int, metric: str) -> list[tuple[str, float, int, int]]:
    """One epoch's MLflow metrics as ``(key, value, timestamp, step)``: per-fold curves
    against the epoch, and the validation score at the global step the pruner saw."""
    ts = now_ms()
    rows = []
    for key, value in record.as_metrics(metric).items():
        if key in ("fold", "epoch") or value is None or not math.isfinite(value):
            continue
        rows.append((f"{key}/fold{record.fold}", float(value), ts, record.epoch))
    if record.val_score is not None and math.isfinite(record.val_score):
        rows.append((f"val_{metric}", float(record.val_score), ts, step))
    return rows


def format_error(error: BaseException) -> str:
    """A failed trial's traceback for its run, secrets masked."""
    return mask_secrets("".join(traceback.format_exception(type(error), error, error.__traceback__)))
