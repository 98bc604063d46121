"""The Optuna study: create or join it, check fingerprints, share its MLflow parent run.

The first worker creates the study and records what defines it (the split's and
the search's fingerprints); every later worker or re-run checks them, so a
worker with other data, another seed or another search space refuses to join.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from tuner.errors import StorageError
from tuner.secrets import mask_secrets

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = [
    "close_stale",
    "fail_dead_trials",
    "opened",
    "open_study",
    "shared_parent_run",
    "space_fingerprint",
]

CLOCK_SKEW = 600.0  # seconds allowed between the clocks of the creator's machine and this one


def space_fingerprint(config: StudyConfig) -> str:
    """What makes trials comparable: the space, the model, the training, the metric."""
    doc = {
        "search_space": config.search_space.model_dump(mode="json", by_alias=True, exclude_defaults=True),
        "model": config.model.model_dump(mode="json"),
        "training": config.training.model_dump(mode="json", exclude={"device", "threads"}),
        "metric": config.objective.metric,
        "normalize": config.data.normalize,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def open_study(
    config: StudyConfig,
    storage: Any,
    *,
    split_fp: str,
    sampler: Any,
    pruner: Any,
    allow_changes: bool = False,
) -> tuple[Any, bool]:
    """Create the study, or join it after checking it is the same study.

    Returns:
        (study, created): created is True for the worker that made it.

    Raises:
        StorageError: when the stored study has another split, space or direction.
    """
    import optuna

    space_fp = space_fingerprint(config)
    try:
        study = optuna.create_study(
            study_name=config.name,
            storage=storage,
            direction=config.direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=False,
        )
        # the objective's name where Optuna shows it (optuna-dashboard, the CLI)
        study.set_metric_names([f"cv_{config.objective.metric}"])
        for key, value in {
            "tuner_split_fingerprint": split_fp,
            "tuner_space_fingerprint": space_fp,
            "tuner_metric": config.objective.metric,
            "tuner_seed": config.seed,
            "tuner_created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }.items():
            study.set_user_attr(key, value)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(study_name=config.name, storage=storage, sampler=sampler, pruner=pruner)
    attrs = _wait_for_attrs(study)
    if study.direction.name.lower() != config.direction:
        raise StorageError(
            f"study {config.name!r} in this storage optimizes {study.direction.name.lower()}, but "
            f"objective.metric {config.objective.metric} needs {config.direction}: use another "
            "study name or storage"
        )
    stored_split = attrs.get("tuner_split_fingerprint")
    if stored_split and stored_split != split_fp:
        raise StorageError(
            f"refusing to join study {config.name!r}: its held-out split was made from other data "
            f"or another seed/test_size/folds (fingerprint {stored_split}, this worker computes "
            f"{split_fp}). Trials on different splits are not comparable and the test set would "
            "leak: use the same data and seed, or a new study name"
        )
    stored_space = attrs.get("tuner_space_fingerprint")
    if stored_space and stored_space != space_fp:
        if not allow_changes:
            raise StorageError(
                f"refusing to join study {config.name!r}: its search space, model or training "
                f"settings differ from this study file (fingerprint {stored_space} vs {space_fp}). "
                "Use a new study name, or pass --allow-changes to continue it with the new settings"
            )
        study.set_user_attr("tuner_space_fingerprint", space_fp)
        study.set_user_attr("tuner_space_changes", int(attrs.get("tuner_space_changes", 0)) + 1)
    return study, False


def _wait_for_attrs(study: Any, timeout: float = 15.0) -> dict[str, Any]:
    """The creator sets the fingerprints right after creating; give it a moment."""
    deadline = time.monotonic() + timeout
    while True:
        attrs = study.user_attrs
        if "tuner_split_fingerprint" in attrs or time.monotonic() > deadline:
            return attrs
        time.sleep(0.2)


def opened(config: StudyConfig, created: bool) -> str:
    """The line that says the study was created or is resumed, and where."""
    from tuner.storage.urls import describe

    return f"{'created' if created else 'resuming'} study {config.name!r} in {describe(config.storage_url)}"


def shared_parent_run(
    study: Any,
    tracker: Any,
    created: bool,
    params: dict[str, Any],
    tags: dict[str, str],
    timeout: float = 60.0,
) -> str | None:
    """Open the study's one MLflow parent run, however many workers start at once.

    Creating the study is atomic in the storage, so exactly one worker is its
    creator: it creates the parent run and records its id on the study. Joiners
    wait for that id (instead of racing to create their own), then reuse it.

    Returns:
        the parent run id (None with MLflow disabled).
    """
    key = "tuner_mlflow_parent_run_id"
    if not tracker.enabled:
        return None
    attrs = study.user_attrs
    existing = attrs.get(key)
    if existing is None and not created and _creator_may_be_opening(study, attrs, timeout):
        deadline = time.monotonic() + timeout
        while existing is None and time.monotonic() < deadline:
            time.sleep(0.25)
            existing = study.user_attrs.get(key)
    # Still none: the creator died first, or created the study with MLflow off.
    parent = tracker.open_parent(existing, params, tags)
    if parent and parent != existing:
        study.set_user_attr(key, parent)
        study.set_user_attr("tuner_mlflow_experiment_id", tracker.experiment_id)
    return parent


def _creator_may_be_opening(study: Any, attrs: dict[str, Any], timeout: float) -> bool:
    """Whether the worker that created the study may still be opening its parent run:
    not once the study has trials (the creator opens the run before its first trial),
    nor long after the study was created (MLflow was off then, or the creator died).
    Without this, every run resuming such a study waited ``timeout`` seconds first."""
    import datetime

    if study.get_trials(deepcopy=False):
        return False
    try:
        made = datetime.datetime.strptime(str(attrs["tuner_created_at"]), "%Y-%m-%dT%H:%M:%S%z")
    except (KeyError, ValueError):
        return True
    # generous: the creator's clock may be another machine's
    return time.time() - made.timestamp() < timeout + CLOCK_SKEW


def close_stale(study: Any, tracker: Any) -> None:
    """Fail trials whose worker died (stale heartbeat), then close their MLflow runs.

    Optuna does this when a worker starts a trial; a study's last worker starts
    none, so it is done once more as each worker stops. Never raises: it runs while
    a worker is stopping.
    """
    import warnings

    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        fail_dead_trials(study)
        tracker.close_orphans(study.get_trials(deepcopy=False))
    except Exception as e:
        if hasattr(tracker, "warn"):
            tracker.warn(f"could not check for trials of dead workers: {mask_secrets(str(e))}")


def fail_dead_trials(study: Any) -> int:
    """Fail RUNNING trials whose worker is certainly dead, where Optuna's heartbeat cannot
    tell: a trial whose process on this host no longer exists, or one that never got as
    far as naming its worker. A worker that died on a full disk or with its database
    gone could write neither the trial's end nor always its first heartbeat, and a
    trial without a heartbeat row is never stale to Optuna: it would hold its budget
    slot forever. Such a trial is re-run as Optuna's heartbeat would re-run it (the
    same callback, the same retry limit), so which check finds it first does not
    matter. Returns how many were failed."""
    from datetime import datetime

    import optuna

    from tuner.run.identity import certainly_dead
    from tuner.storage.backends import GRACE_PERIOD, HEARTBEAT_INTERVAL, retry_dead_trial

    failed = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker is None:
            started = t.datetime_start
            age = (datetime.now() - started).total_seconds() if started else 0.0
            dead = age > GRACE_PERIOD + 2 * HEARTBEAT_INTERVAL
        else:
            dead = certainly_dead(str(worker))
        if not dead:
            continue
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except Exception:  # another worker got there first, or the storage refuses
            continue
        failed += 1
        retry_dead_trial()(study, t)
    return failed
