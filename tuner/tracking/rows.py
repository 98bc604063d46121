"""What a trial run's MLflow rows look like: per-epoch metrics, one key per curve family
at the pruner's global step, and a failed trial's traceback (secrets masked).
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
    """One epoch's MLflow metrics as ``(key, value, timestamp, step)``: one key per curve
    family (``train_loss``, ``val_loss``, ``train_<metric>``, ``val_<metric>``,
    ``grad_norm_mean``, ``grad_norm_max``, ``grad_ratio`` (the input layer's gradient norm
    over the output layer's), ``epoch_seconds``) at the global step
    ``fold * max_epochs + epoch``, the step of Optuna's intermediate values, so MLflow's
    charts, Optuna's and optuna-dashboard's share one x axis. The folds overlaid, per
    epoch, are the trial run's ``fold_curves.png``."""
    ts = now_ms()
    rows = []
    for key, value in record.as_metrics(metric).items():
        if key in ("fold", "epoch") or value is None or not math.isfinite(value):
            continue
        rows.append(("epoch_seconds" if key == "seconds" else key, float(value), ts, step))
    return rows


def format_error(error: BaseException) -> str:
    """A failed trial's traceback for its run, secrets masked."""
    return mask_secrets("".join(traceback.format_exception(type(error), error, error.__traceback__)))
