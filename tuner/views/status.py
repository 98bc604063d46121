"""``tune status``: where a study stands: running (with an ETA), finished, or stopped
short of its budget (why and when), and whether the test split is still sealed.

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

__all__ = ["duration", "render_status", "study_status"]

STATES = ("complete", "pruned", "fail", "running", "waiting")


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def study_status(config: StudyConfig, study: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """Counts by state, the best trial so far, the running trials and an ETA, and the
    study's state: ``running``, ``finished`` (budget reached), ``stopped`` (nothing runs,
    the budget is not reached) or ``not started``.

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
    running = _running(trials, now)
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
    from tuner.storage.records import scorings, stopped

    if running:  # past this file's budget too: a run with a larger --n-trials
        state = "running"
    elif remaining == 0:
        state = "finished"
    else:
        state = "stopped" if trials else "not started"
    return {
        "study": config.name,
        "state": state,
        "stopped": stopped(study, len(finished)) if state == "stopped" else None,
        "test_looks": len(scorings(study)),
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


def _running(trials: list[Any], now: dt.datetime) -> list[dict[str, Any]]:
    """The running trials: on which worker, for how long, and their last report."""
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
    return running


def duration(seconds: float | None) -> str:
    """``42s``, ``3m07s`` or ``1h05m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.2g}s"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def render_status(st: dict[str, Any]) -> str:
    """``study_status``'s output as a few readable lines."""
    from tuner.views.findings import trials_of_budget

    c = st["counts"]
    m = st["metric"]
    lines = [
        f"study {st['study']}  ({m}, {st['direction']})",
        f"trials: {trials_of_budget(st['finished'], st['budget'])} — complete {c['complete']}, "
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
                f"    trial #{r['number']:<4} on {r['worker'] or '?'}  for {duration(r['running_s'])}{at}"
            )
    lines += _render_state(st)
    return "\n".join(lines)


def _render_state(st: dict[str, Any]) -> list[str]:
    """Whether the study runs, finished or stopped, and the test split's state."""
    looks = st.get("test_looks", 0)
    test = f"scored {looks} time(s)" if looks else "sealed until the budget is reached"
    if st["remaining"] == 0 and st.get("state") == "running":
        return [
            f"budget: this file's {st['budget']} reached, yet trials still run: a worker was given a "
            "larger --n-trials (pass the same --n-trials to tune status for its ETA)",
            f"held-out test: {test}",
        ]
    if st["remaining"] == 0:
        return ["budget: reached", f"held-out test: {test if looks else 'not scored yet'}"]
    if st.get("state") == "stopped":
        stop = st.get("stopped")
        why = f" by {stop['reason']} at {stop['at']}" if stop else ""
        return [
            f"stopped{why}: nothing is running; {st['remaining']} trial(s) left of the budget. "
            "Run the same command to continue",
            f"held-out test: {test}",
        ]
    mean = st["mean_trial_s"]
    eta = "unknown until a trial finishes" if st["eta_s"] is None else f"~{duration(st['eta_s'])}"
    per = "" if mean is None else f" (mean finished trial {duration(mean)})"
    lines = [f"ETA: {eta} for {st['remaining']} more trial(s){per}"]
    if st["timeout_s"]:
        lines.append(f"      or when a worker reaches budget.timeout ({duration(st['timeout_s'])})")
    lines.append(f"held-out test: {test}")
    return lines
