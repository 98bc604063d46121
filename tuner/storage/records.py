"""What tuner records on an Optuna study beside its trials, read by every layer that
shows or continues a study: the lockbox (each scoring of the held-out test split) and
why the search last stopped short of its budget, and the pre-flight warnings."""

from __future__ import annotations

from typing import Any

__all__ = ["LOCKBOX_ATTR", "PREFLIGHT_ATTR", "STOPPED_ATTR", "record_stop", "scorings", "stopped"]

LOCKBOX_ATTR = "tuner_lockbox"
PREFLIGHT_ATTR = "tuner_preflight_warnings"  # the last run's pre-flight warnings, for `tune report`


def scorings(study: Any) -> list[dict[str, Any]]:
    """Every recorded scoring of the test split, oldest first."""
    return list(study.user_attrs.get(LOCKBOX_ATTR, []))


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
