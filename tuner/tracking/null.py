"""The tracker that stands in when ``mlflow.enabled: false``: every call does nothing."""

from __future__ import annotations

from typing import Any

__all__ = ["NullTracker"]


class NullTracker:
    """Stands in when ``mlflow.enabled: false``."""

    enabled = False
    parent_id = None
    experiment_id = None
    warnings: list[str] = []

    def open_parent(self, *a: Any, **k: Any) -> None:
        return None

    def close_parent(self, status: str) -> None:
        pass

    def start_writer(self) -> None:
        pass

    def log_test_looks(self, looks: list[Any], metric: str) -> None:
        pass

    def log_summary(self, summary: Any) -> None:
        pass

    def settle(self) -> list[str]:
        return []

    def start_trial(self, number: int, *a: Any, **k: Any) -> Any:
        return _NullRun()

    def close_orphans(self, trials: list[Any]) -> int:
        return 0


class _NullRun:
    run_id = None

    def epoch(self, record: Any, step: int) -> None:
        pass

    def fold_done(self, fold: int, score: float) -> None:
        pass

    def record_id(self) -> None:
        pass

    def end(self, *a: Any, **k: Any) -> None:
        pass
