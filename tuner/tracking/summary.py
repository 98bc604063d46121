"""The study's parent run as its summary: what a person sees on the parent's row and page.

Built from ``tuner.views.report.summarize``'s plain data (passed in; tracking does not
read the study): metrics ``best_cv_<metric>`` (+ ``best_cv_std``), ``test_<metric>`` and the
other test metrics of the first look, ``validation_optimism``, counts by state and by
diagnosis, ``epochs_trained``; the best trial's parameters as params (the same names as
the trial runs' params, so the parent's row lines up with its children's columns); and
a description with a short table and links to the best trial's and the refit's runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tuner.tracking.rows import now_ms

__all__ = ["summary_batch"]


def summary_batch(
    summary: Mapping[str, Any], experiment_id: str, trial_runs: Mapping[int, str | None]
) -> tuple[list[Any], dict[str, str], str]:
    """``(metrics, best params, description)`` for the parent run.

    Args:
        summary: ``tuner.views.report.summarize``'s output.
        experiment_id: the study's experiment, for links.
        trial_runs: trial number → MLflow run id (the best trial's, at least).
    """
    from mlflow.entities import Metric

    m, ts = summary["metric"], now_ms()
    values: dict[str, float | None] = {}
    best, test = summary.get("best"), summary.get("test")
    if best:
        values[f"best_cv_{m}"] = best.get("cv_mean")
        values["best_cv_std"] = best.get("cv_std")
        values["best_trial"] = best["number"]
    if test:
        for name, v in (test.get("metrics") or {}).items():
            values[f"test_{name}"] = v
        values["validation_optimism"] = test.get("validation_optimism")
        values["refit_epochs"] = test.get("refit_epochs")
    for state, n in summary["counts"].items():
        values[f"trials_{state}"] = n
    for name, n in ((summary.get("diagnoses") or {}).get("counts") or {}).items():
        values[f"diagnosis_{name}"] = n
    values["epochs_trained"] = (summary.get("compute") or {}).get("epochs_trained")
    metrics = [
        Metric(k, float(v), ts, 0)
        for k, v in values.items()
        if isinstance(v, (int, float)) and math.isfinite(float(v))
    ]
    params = {k: str(v) for k, v in (best or {}).get("params", {}).items()}
    return metrics, params, _description(summary, experiment_id, trial_runs)


def _link(experiment_id: str, run_id: str | None, text: str) -> str:
    return f"[{text}](#/experiments/{experiment_id}/runs/{run_id})" if run_id else text


def _description(summary: Mapping[str, Any], experiment_id: str, trial_runs: Mapping[int, str | None]) -> str:
    m, c = summary["metric"], summary["counts"]
    best, test = summary.get("best"), summary.get("test")
    rows = [
        (
            "trials",
            f"{summary['finished']} of {summary['budget']}: complete {c['complete']}, pruned {c['pruned']}",
        ),
    ]
    if best:
        std = best.get("cv_std")
        cv = f"{best['cv_mean']:.4f}" + (f" ± {std:.4f}" if isinstance(std, float) else "")
        run = _link(experiment_id, trial_runs.get(best["number"]), f"trial #{best['number']}")
        rows.append((f"best cross-validated {m}", f"{cv} ({run})"))
    if test:
        refit = _link(experiment_id, test.get("refit_run_id"), f"refit of trial #{test['trial_number']}")
        rows.append((f"held-out test {m}", f"**{test['score']:.4f}** on {test.get('n_test')} rows ({refit})"))
        if test.get("times_scored", 1) > 1:
            rows.append(
                (
                    "test split scored",
                    f"{test['times_scored']} times: the first look above is the unbiased one",
                )
            )
    else:
        rows.append((f"held-out test {m}", "sealed: scored once, after the search reaches its budget"))
    counts = (summary.get("diagnoses") or {}).get("counts") or {}
    if counts:
        rows.append(("diagnoses", ", ".join(f"{k} {v}" for k, v in counts.items())))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        f"tuner study **{summary['study']}**: one child run per trial (`trial-NNN state`), and the "
        "refit of the best configuration with the held-out test score.\n\n"
        f"| | |\n|---|---|\n{table}\n"
    )
