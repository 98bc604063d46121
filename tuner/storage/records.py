"""What tuner records on an Optuna study beside its trials, read by every layer that
shows or continues a study: the lockbox (each scoring of the held-out test split)."""

from __future__ import annotations

from typing import Any

__all__ = ["LOCKBOX_ATTR", "scorings"]

LOCKBOX_ATTR = "tuner_lockbox"


def scorings(study: Any) -> list[dict[str, Any]]:
    """Every recorded scoring of the test split, oldest first."""
    return list(study.user_attrs.get(LOCKBOX_ATTR, []))
