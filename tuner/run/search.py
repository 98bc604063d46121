"""The search phase of a study: trials to the global budget under tuner's signal
handling, and a storage that fails anywhere in Optuna's trial loop turned into a
clean outcome (the search carrying on once a database server is back, or exit 2
with one line), never a traceback or a run left RUNNING."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.errors import StorageError, TunerError

if TYPE_CHECKING:
    import optuna

    from tuner.config import StudyConfig
    from tuner.run.interrupts import Interrupts
    from tuner.run.prepare import Prepared

__all__ = ["MAX_RECOVERIES", "Session", "close", "search"]

# Times one run carries on after its database server failed mid-trial and came back.
MAX_RECOVERIES = 5


@dataclass
class Session:
    """What the phases after ``prepare`` share."""

    config: StudyConfig
    prep: Prepared
    device: Any
    tracker: Any
    storage: Any
    study: optuna.Study
    say: Callable[[str], None]
    busy: int = 0  # cores found busy with other work when torch's threads were chosen


def search(session: Session, optimize: bool, live: bool | None, interrupts: Interrupts) -> None:
    """Run trials until the study's budget is reached (or the timeout, or too many
    failures in a row); an interrupt is raised as KeyboardInterrupt."""

    from objectives.cv import CrossValidatedObjective
    from tuner.run.best import StudyBest
    from tuner.run.budget import Budget
    from tuner.run.identity import worker_name
    from tuner.run.trial import AfterTrial, BestSoFar, TrialFunction
    from tuner.storage.records import record_stop
    from tuner.views.diagnose import chance_for
    from tuner.views.progress import Progress

    config, prep, study = session.config, session.prep, session.study
    metric = config.objective.metric
    chance = chance_for(metric, prep.dataset.y[prep.splits.trainval], prep.dataset.n_classes)
    # the best trial, read incrementally: fold pruning's reference and the best value
    view = StudyBest(study)
    objective = CrossValidatedObjective(config, prep.dataset, prep.splits, session.device, view.reference)
    total = config.budget.n_trials
    deadline = time.monotonic() + config.budget.timeout if config.budget.timeout else None
    budget = Budget(study, session.storage, total, session.tracker, deadline=deadline)
    progress = Progress(total, budget.finished(), metric, live=live)
    best = BestSoFar(view)  # looked up once per trial, for the diagnosis and the progress line
    trial_fn = TrialFunction(
        config,
        objective,
        session.tracker,
        budget,
        interrupts,
        chance,
        worker_name(),
        progress,
        session.storage,
        best,
        session.busy,
    )
    after = AfterTrial(config, budget, progress, interrupts, session.say, best)
    try:
        _optimize(session, optimize, budget, progress, interrupts, trial_fn, after)
    finally:
        trial_fn.close()
    if after.stop_reason:
        record_stop(study, f"{after.failures} failed trials in a row", budget.finished(), total)
        close(session, "FAILED")
        raise TunerError(after.stop_reason)


def _optimize(
    session: Session,
    optimize: bool,
    budget: Any,
    progress: Any,
    interrupts: Interrupts,
    trial_fn: Any,
    after: Any,
) -> None:
    """``study.optimize`` with tuner's signal handling (installed by ``run_study``).

    Raises:
        KeyboardInterrupt: on Ctrl-C or SIGTERM, once the trial in flight is closed.
        StorageError: when the storage stopped accepting writes (disk full, database
            gone for longer than the reconnect window), wherever in Optuna's loop.
    """
    from tuner.run.study import close_stale
    from tuner.storage.reconnect import storage_failure
    from tuner.storage.urls import is_file_storage

    study, config = session.study, session.config
    server = not is_file_storage(config.storage_url)
    recoveries = 0
    try:
        while True:
            try:
                _optimize_once(study, optimize, budget, interrupts, trial_fn, after)
                break
            except Exception as e:
                cause = storage_failure(e)
                if cause is None:
                    raise
                # Optuna could not record the trial in flight (its MLflow run is closed):
                # record it now if the storage takes the write. A database server that
                # came back (a restart, a fail-over) carries the search on; a full disk,
                # a read-only file or a server gone for good ends it, the finished trials
                # being committed.
                back = trial_fn.abandon(study)
                if server and back and recoveries < MAX_RECOVERIES:
                    recoveries += 1
                    session.say(
                        f"the study storage failed mid-trial ({_first_line(cause)}) and is back: the "
                        "trial in flight is recorded as it ended, and the search carries on"
                    )
                    continue
                progress.close()
                close(session, "FAILED")
                raise _storage_failed(config, cause) from None
    finally:
        progress.close()
        # A worker killed meanwhile left its trial RUNNING: fail it once its heartbeat
        # is stale (which enqueues its retry) and close its MLflow run.
        close_stale(study, session.tracker)


def _optimize_once(
    study: optuna.Study,
    optimize: bool,
    budget: Any,
    interrupts: Interrupts,
    trial_fn: Any,
    after: Any,
) -> None:
    from tuner.run.interrupts import quiet_surplus

    # No n_trials: failed trials do not count, so the study runs until the budget's
    # finished trials exist (or the timeout, or too many failures in a row).
    with interrupts.allowed():
        go = optimize and budget.wait_for_slot(after.waiting)
    if go:
        # What is left of budget.timeout: after a storage recovery the search resumes
        # here, and must not start the clock again.
        timeout = None if budget.deadline is None else max(0.0, budget.deadline - time.monotonic())
        with quiet_surplus():
            study.optimize(
                trial_fn,
                timeout=timeout,
                callbacks=[after],
                catch=(Exception,),
                gc_after_trial=False,
            )
    interrupts.check()  # one that came after the last trial's callback


def _first_line(e: BaseException) -> str:
    from tuner.secrets import mask_secrets

    text = str(e).strip()
    return mask_secrets(text.splitlines()[0] if text else type(e).__name__)


def _storage_failed(config: StudyConfig, e: BaseException) -> StorageError:
    from tuner.storage.urls import describe, is_file_storage

    if is_file_storage(config.storage_url):
        fix = "free disk space or fix the storage, then run the same command to resume"
    else:
        fix = (
            "once the database is reachable again, run the same command to resume (the trial "
            "that was in flight is retried)"
        )
    return StorageError(
        f"the study storage ({describe(config.storage_url)}) stopped accepting writes: "
        f"{_first_line(e)}. Trials finished before this are kept; {fix}"
    )


def close(session: Session, status: str) -> None:
    """End the study's parent run early (KILLED, FAILED) and say what tracking lost."""
    session.tracker.close_parent(status)
    for w in session.tracker.settle():
        session.say(f"warning: {w}")
