"""``tune status``: where a study stands while its workers run.

Read-only: it loads the study and reads its trials, never writes to the storage, so
it is safe to run against a study that workers are filling right now.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["render_status", "study_status"]

STATES = ("complete", "pruned", "fail", "running", "waiting")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def study_status(config: StudyConfig, study: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """Counts by state, the best trial so far, the running trials and an ETA.

    The ETA assumes the remaining trials take the mean duration of the finished ones
    and run side by side on as many workers as are running trials now (at least one).

    Args:
        config: the study's config (budget, metric).
        study: the loaded Optuna study.
        now: the current time (naive local time, like Optuna's timestamps).
    """
    now = now or dt.datetime.now()
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    durations = [d for t in finished if (d := _seconds(t.datetime_start, t.datetime_complete)) is not None]
    mean = sum(durations) / len(durations) if durations else None
    running = []
    for t in trials:
        if t.state.name != "RUNNING":
            continue
        steps = sorted(t.intermediate_values)
        running.append(
            {
                "number": t.number,
                "worker": t.user_attrs.get("worker"),
                "started": t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else None,
                "running_s": _seconds(t.datetime_start, now),
                "last_step": steps[-1] if steps else None,
                "last_value": t.intermediate_values[steps[-1]] if steps else None,
                "params": dict(t.params),
            }
        )
    budget = config.budget.n_trials
    remaining = max(0, budget - len(finished))
    workers = max(1, len({r["worker"] for r in running}))
    eta = None
    if remaining == 0:
        eta = 0.0
    elif mean is not None:
        eta = math.ceil(remaining / workers) * mean
        # the running trials are already part way through
        eta = max(0.0, eta - min((r["running_s"] or 0.0) for r in running)) if running else eta
    best = None
    try:
        b = study.best_trial
        best = {
            "number": b.number,
            "value": b.value,
            "cv_std": b.user_attrs.get("cv_std"),
            "params": dict(b.params),
        }
    except ValueError:
        pass
    return {
        "study": config.name,
        "metric": config.objective.metric,
        "direction": config.direction,
        "budget": budget,
        "timeout_s": config.budget.timeout,
        "counts": {k: counts.get(k, 0) for k in STATES},
        "finished": len(finished),
        "remaining": remaining,
        "best": best,
        "running": running,
        "mean_trial_s": mean,
        "eta_s": eta,
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def render_status(st: dict[str, Any]) -> str:
    """``study_status``'s output as a few readable lines."""
    c = st["counts"]
    m = st["metric"]
    lines = [
        f"study {st['study']}  ({m}, {st['direction']})",
        f"trials: {st['finished']}/{st['budget']} finished — complete {c['complete']}, "
        f"pruned {c['pruned']}, failed {c['fail']}, running {c['running']}, waiting {c['waiting']}",
    ]
    b = st["best"]
    if b is None:
        lines.append("best so far: none (no trial completed yet)")
    else:
        std = f" ± {b['cv_std']:.4f}" if isinstance(b["cv_std"], float) else ""
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items()
        )
        lines.append(f"best so far: trial #{b['number']} {m} {b['value']:.4f}{std}  ({params})")
    if st["running"]:
        lines.append("running:")
        for r in st["running"]:
            at = "" if r["last_step"] is None else f", step {r['last_step']} val {r['last_value']:.4f}"
            lines.append(
                f"    trial #{r['number']:<4} on {r['worker'] or '?'}  for {_duration(r['running_s'])}{at}"
            )
    if st["remaining"] == 0:
        lines.append("budget: reached")
    else:
        mean = st["mean_trial_s"]
        eta = "unknown until a trial finishes" if st["eta_s"] is None else f"~{_duration(st['eta_s'])}"
        per = "" if mean is None else f" (mean finished trial {_duration(mean)})"
        lines.append(f"ETA: {eta} for {st['remaining']} more trial(s){per}")
        if st["timeout_s"]:
            lines.append(f"      or when a worker reaches budget.timeout ({_duration(st['timeout_s'])})")
    return "\n".join(lines)
