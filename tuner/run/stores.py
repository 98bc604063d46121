"""Open a study's two stores in the one safe order, for ``run_study`` and for the
parent of ``--workers`` alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["load_existing", "open_stores"]


def open_stores(config: StudyConfig, start_writer: bool = False) -> tuple[Any, Any]:
    """The study storage, then MLflow's tracker: each checked before the next is touched,
    so that a storage that fails its checks leaves no MLflow store or experiment, and
    MLflow that cannot be reached leaves no new storage file. The study itself and the
    experiment are made later, together.

    Args:
        start_writer: start the MLflow writer process now, so that it has warmed up
            (imported MLflow) by the time the first trial ends.

    Returns:
        (storage, tracker).
    """
    from tuner.storage.backends import build_storage, new_storage_file, remove_storage_file
    from tuner.storage.writable import check_storage_writable
    from tuner.tracking.tracker import open_tracker

    check_storage_writable(config.storage_url)
    made = new_storage_file(config.storage_url)
    try:
        storage = build_storage(config.storage_url)
        tracker = open_tracker(config)
    except BaseException:
        remove_storage_file(made)
        raise
    if start_writer:
        tracker.start_writer()
    return storage, tracker


def load_existing(config: StudyConfig) -> Any:
    """The study as it is in its storage (made by an earlier `tune`); creates nothing."""
    import optuna

    from tuner.errors import StorageError
    from tuner.storage.backends import build_storage
    from tuner.storage.urls import describe

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = build_storage(config.storage_url, create=False)
    try:
        return optuna.load_study(study_name=config.name, storage=storage)
    except KeyError:
        raise StorageError(
            f"no study {config.name!r} in {describe(config.storage_url)}: run `tune STUDY.yaml` first"
        ) from None
