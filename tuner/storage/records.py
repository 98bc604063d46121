"""What tuner records on an Optuna study beside its trials, read by every layer that
shows or continues a study: the lockbox (each scoring of the held-out test split) and
why the search last stopped short of its budget, and the pre-flight warnings."""

from __future__ import annotations

from typing import Any

__all__ = [
    "LOCKBOX_ATTR",
    "PREFLIGHT_ATTR",
    "STOPPED_ATTR",
    "record_scorings",
    "record_stop",
    "scorings",
    "stopped",
]

LOCKBOX_ATTR = "tuner_lockbox"
PREFLIGHT_ATTR = "tuner_preflight_warnings"  # the last run's pre-flight warnings, for `tune report`


def scorings(study: Any) -> list[dict[str, Any]]:
    """Every recorded scoring of the test split, oldest first."""
    return list(study.user_attrs.get(LOCKBOX_ATTR, []))


def record_scorings(study: Any, history: list[dict[str, Any]]) -> None:
    """Write the lockbox (every scoring, as JSON) and, beside it, what a person reads in
    optuna-dashboard's or Optuna CLI's study attributes: ``test_<metric>`` (the first
    look, the unbiased estimate), ``test_scored`` (how often, for which trials, when)
    and ``refit_model`` (the latest refit's model URI)."""
    study.set_user_attr(LOCKBOX_ATTR, history)
    if not history:
        return
    first, last = history[0], history[-1]
    study.set_user_attr(f"test_{first['metric']}", float(first["score"]))
    trials = ", ".join(f"#{n}" for n in dict.fromkeys(e["trial_number"] for e in history))
    study.set_user_attr(
        "test_scored",
        f"{len(history)} time(s), for trial(s) {trials}; first at {first['scored_at']} on "
        f"{first.get('n_test')} rows: the first look is the unbiased estimate",
    )
    if last.get("model_uri"):
        study.set_user_attr("refit_model", str(last["model_uri"]))


STOPPED_ATTR = "tuner_stopped"


def stopped(study: Any, finished: int) -> dict[str, Any] | None:
    """Why and when the search stopped short of its budget with ``finished`` trials
    finished; None when it never did, or when the record is of an earlier stop (trials
    finished since, and whatever stopped them last said nothing: a killed worker)."""
    record = study.user_attrs.get(STOPPED_ATTR)
    if not isinstance(record, dict) or record.get("finished") != finished:
        return None
    return dict(record)


def record_stop(study: Any, reason: str, finished: int, budget: int) -> None:
    """Record that the search stopped short of its budget: ``reason`` says why (the
    timeout, an interrupt, failures in a row). Never raises: it runs while a study is
    stopping, and the storage may be what failed."""
    import socket
    import time

    try:
        study.set_user_attr(
            STOPPED_ATTR,
            {
                "reason": reason,
                "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "finished": finished,
                "budget": budget,
                "host": socket.gethostname(),
            },
        )
    except Exception:  # the storage is down or full: the stop is reported on the terminal
        pass
