"""What a regression refit records beside its test metrics: the largest errors on the
held-out test split (which rows, how far off) and, on its MLflow run, the
predicted-vs-actual and residual plots (PNG) and every test prediction (CSV).

The classification counterpart is ``tuner.run.mistakes`` (per-class recall, the most
confident mistakes) with the confusion matrix in ``tuner.run.lockbox``.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["LARGEST_ERRORS", "log_regression_refit", "regression_record"]

LARGEST_ERRORS = 10  # test rows listed by absolute error in the scoring record


def regression_record(rows: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """The test split's largest errors (dataset row, actual, predicted, error) and how
    the residuals spread, for the scoring record (``tune report`` shows it)."""
    residual = y - pred
    worst = np.argsort(-np.abs(residual), kind="stable")[:LARGEST_ERRORS]
    return {
        "largest_errors": [
            {
                "row": int(rows[i]),
                "actual": float(y[i]),
                "predicted": float(pred[i]),
                "error": float(residual[i]),
            }
            for i in worst
        ],
        "residual_mean": float(residual.mean()),
        "residual_sd": float(residual.std()),
        "target_sd": float(y.std()),
    }


def log_regression_refit(
    tracker: Any, run_id: str, rows: np.ndarray, y: np.ndarray, pred: np.ndarray, entry: dict[str, Any]
) -> None:
    """The refit run's regression artifacts; a plot that fails is a warning, never an error."""
    import csv

    client = tracker.client
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "actual", "predicted", "error"])
    for r, a, p in zip(rows.tolist(), y.tolist(), pred.tolist(), strict=True):
        writer.writerow([r, repr(a), repr(p), repr(a - p)])
    client.log_text(run_id, out.getvalue(), "test_predictions.csv")
    metrics = entry["metrics"]
    title = (
        f"held-out test: RMSE {metrics['rmse']:.4g}, MAE {metrics['mae']:.4g}, "
        f"R² {metrics['r2']:.3f} (n={len(y)})"
    )
    try:
        from tuner.views.plots import predicted_actual_figure, residuals_figure

        client.log_figure(run_id, predicted_actual_figure(y, pred, title), "predicted_vs_actual.png")
        client.log_figure(run_id, residuals_figure(y, pred), "residuals.png")
    except Exception as e:
        tracker.warn(f"could not draw the regression plots: {e}")
