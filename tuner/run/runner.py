"""Run a study, as a list of named phases:

1. ``prepare``: the data and the splits, checked (``tuner.run.prepare``);
2. ``_claim_device``: torch threads, the device, mixed precision;
3. ``open_stores`` (``tuner.run.stores``): the study storage checked and opened, then
   MLflow reached (the writer started);
4. ``_open_study``: the sampler and pruner; the study created or joined, with
   its one MLflow parent run;
5. ``search`` (``tuner.run.search``): the trials, to the global budget (or the timeout, or too many failures);
6. ``_conclude``: the refit of the best configuration and the single scoring of the
   held-out test split, the study's plots, its parent run closed, the summary.

The order is the standard's: the config is already valid; the data and splits are
made (and checked) before any storage, study or MLflow run exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuner.run.interrupts import Interrupted
from tuner.run.prepare import Prepared, prepare
from tuner.run.search import Session, close, search
from tuner.run.stores import open_stores

if TYPE_CHECKING:
    import optuna

    from tuner.config import StudyConfig
    from tuner.run.interrupts import Interrupts

__all__ = ["Interrupted", "Prepared", "prepare", "run_study"]


def run_study(
    config: StudyConfig,
    *,
    allow_changes: bool = False,
    refit: bool = True,
    say: Callable[[str], None] = print,
    live: bool | None = None,
    worker_rank: int | None = None,
    threads: int | None = None,
    optimize: bool = True,
    finish_early: bool = False,
) -> dict[str, Any]:
    """Run ``config``'s study to its budget (resuming it if it exists) and refit.

    The test split is scored once the study's budget is reached, never for a search
    that stopped short of it (a timeout, an interrupt, failures in a row), unless
    ``finish_early`` asks for it (``tune finish``), which the scoring records.

    Args:
        worker_rank: this worker's rank (``--workers``, ``$TUNER_WORKER_RANK``, or a
            Kubernetes ``$JOB_COMPLETION_INDEX``); its sampler seed is ``seed + rank``
            so workers do not sample the same points. Without one, a worker joining
            an existing study mixes its ``host:pid`` into the seed instead.
        threads: torch CPU threads (the worker's share of the cores) unless
            ``training.threads`` is set.
        optimize: False after local workers ran the trials (or for ``tune finish``):
            run no trial, only conclude.
        finish_early: refit and score the test split now, budget reached or not.

    Returns the study summary (see ``tuner.views.report.summarize``).
    """
    import optuna

    from tuner.run.interrupts import Interrupts
    from tuner.storage.reconnect import enable_reconnect

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    enable_reconnect(say)
    interrupts = Interrupts()
    restore = interrupts.install()
    try:
        with interrupts.allowed():  # nothing exists yet: Ctrl-C stops at once
            prep = prepare(config)
            device, busy = _claim_device(config, threads, say)
            storage, tracker = open_stores(config, start_writer=optimize)
        # Held while the study and its parent run are made, so they exist together.
        # After local workers ran the trials (or for `tune finish`), the study was
        # announced already: only the conclusion is left to say.
        announce = say if optimize else (lambda _: None)
        study = _open_study(config, prep, storage, tracker, announce, allow_changes, worker_rank)
        session = Session(config, prep, device, tracker, storage, study, say, busy)
        try:
            interrupts.check()
            _log_preflight(session)
            search(session, optimize, live, interrupts)
            return _conclude(session, refit, finish_early, interrupts)
        except KeyboardInterrupt:
            _interrupted(session)
            raise
    finally:
        restore()


def _interrupted(session: Session) -> None:
    """Ctrl-C or SIGTERM once the study exists: its parent run ends KILLED, the stop is
    recorded (when the budget is not reached), and the user is told how to resume."""
    from tuner.run.budget import count_finished
    from tuner.storage.records import record_stop

    try:
        finished = count_finished(session.study, session.storage)
    except Exception:  # the storage is what failed: the terminal still says what to do
        finished = -1
    total = session.config.budget.n_trials
    if 0 <= finished < total:
        record_stop(session.study, "an interrupt (Ctrl-C or SIGTERM)", finished, total)
    close(session, "KILLED")
    done = f"after {finished}/{total} finished trials" if finished >= 0 else "early"
    session.say(f"interrupted {done}; run the same command to resume")


def _claim_device(config: StudyConfig, threads: int | None, say: Callable[[str], None]) -> tuple[Any, int]:
    """Torch's CPU threads and the training device, and the cores found busy with other
    work (0 where the threads were given); ``amp: true`` without CUDA fails here, before
    any storage exists. Without ``training.threads`` or a worker's share, the threads
    are the cores other work leaves free (``default_threads``)."""
    import torch

    from objectives.devices import resolve_amp, use_cuda_graphs
    from objectives.training import resolve_device
    from tuner.run.workers import default_threads

    chosen, busy = config.training.threads or threads, 0
    if chosen is None:
        chosen, busy = default_threads()
        if busy:
            say(
                f"{busy} other task(s) busy on this machine's cores: training on {chosen} torch "
                "thread(s) (set training.threads to choose)"
            )
    torch.set_num_threads(chosen)
    device = resolve_device(config.training.device)
    use_cuda_graphs(config.training.cuda_graphs, device, resolve_amp(config.training.amp, device))
    return device, busy


def _open_study(
    config: StudyConfig,
    prep: Prepared,
    storage: Any,
    tracker: Any,
    say: Callable[[str], None],
    allow_changes: bool,
    worker_rank: int | None,
) -> optuna.Study:
    """Build the sampler and pruner; create or join the study and its one MLflow parent
    run; close the trial runs that dead workers left open."""
    import optuna

    from tuner.config.registry import build_pruner, build_sampler
    from tuner.run.identity import resolve_rank, unnamed_worker_offset, worker_name
    from tuner.run.study import open_study, opened, shared_parent_run
    from tuner.tracking.params import study_params

    sampler_args = dict(config.sampler.args)
    if "seed" in _init_args(config.sampler.name):
        sampler_args = {"seed": config.seed, **sampler_args}
    rank = resolve_rank(worker_rank)
    if rank and sampler_args.get("seed") is not None:
        sampler_args["seed"] = int(sampler_args["seed"]) + rank
    sampler = build_sampler(config.sampler.name, sampler_args)
    pruner = (
        build_pruner(config.pruner.name, config.pruner.args) if config.pruner else optuna.pruners.NopPruner()
    )
    if config.pruner and config.fold_pruning.pruner_peers == "finished":
        from tuner.run.peers import FinishedPeers

        pruner = FinishedPeers(pruner)
    study, created = open_study(
        config,
        storage,
        split_fp=prep.split_fp,
        sampler=sampler,
        pruner=pruner,
        allow_changes=allow_changes,
    )
    if rank is None and not created and sampler_args.get("seed") is not None:
        # Joined without a rank: another worker may hold the same seed right now.
        sampler_args["seed"] = int(sampler_args["seed"]) + unnamed_worker_offset(worker_name())
        study.sampler = build_sampler(config.sampler.name, sampler_args)
    if rank is None:
        say(opened(config, created))
    else:
        say(f"worker {rank}: {'created' if created else 'joined'} study {config.name!r}")
    shared_parent_run(
        study, tracker, created, study_params(config), {"tuner.split_fingerprint": prep.split_fp}
    )
    tracker.close_orphans(study.get_trials(deepcopy=False))
    return study


def _log_preflight(session: Session) -> None:
    """The loader's notes and the pre-flight warnings, printed; the warnings are also
    logged on the study's parent run."""
    from tuner.run.preflight import log_warnings
    from tuner.storage.records import PREFLIGHT_ATTR

    for note in session.prep.dataset.notes:
        session.say(f"pre-flight note: {note}")
    warnings = list(session.prep.warnings)
    for w in warnings:
        session.say(f"pre-flight warning: {w}")
    if session.study.user_attrs.get(PREFLIGHT_ATTR, []) != warnings:  # for `tune report`
        session.study.set_user_attr(PREFLIGHT_ATTR, warnings)
    log_warnings(session.tracker, warnings)


def _conclude(session: Session, refit: bool, finish_early: bool, interrupts: Interrupts) -> dict[str, Any]:
    """Refit the best configuration and score the test split once (when the budget is
    reached, or when asked to finish early), log the study's plots, close its parent
    run, and summarize it. A search stopped short of its budget leaves the test split
    sealed, and says so."""
    import optuna

    from tuner.run.budget import count_finished
    from tuner.run.lockbox import score_best
    from tuner.views.report import summarize

    config, study, tracker, say = session.config, session.study, session.tracker, session.say
    extra: dict[str, Any] = {}
    finished, total = count_finished(study, session.storage), config.budget.n_trials
    has_complete = any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    if finished < total and not finish_early:
        _stopped_short(session, finished, refit)
    elif refit and has_complete:
        if finished < total:
            say(
                f"finishing early, as asked, at {finished}/{total} trials: the test split is scored "
                "now, and its record says the search was cut short"
            )
        prep = session.prep
        with interrupts.allowed():  # the refit closes its run KILLED on the way out
            extra["test"] = score_best(
                config,
                prep.dataset,
                prep.splits,
                study,
                session.storage,
                tracker,
                session.device,
                prep.split_fp,
                say=say,
                trials_finished=finished,
            )
    if not has_complete:
        say("no trial completed, so there is nothing to refit; the test split stays unscored")
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        from tuner.views.plots import log_study_plots

        plots = log_study_plots(tracker, study, config)  # PNGs on the parent run; never raises
        if plots:  # so that `tune report` lists them without opening MLflow
            study.set_user_attr("tuner_study_plots", plots)
    summary = summarize(config, study, extra=extra)  # once: importances and diagnoses read every trial
    if not running:
        tracker.log_summary(summary)  # the parent run is the study's summary
        tracker.close_parent("FINISHED")
    tracker.settle()  # retries what an MLflow outage held back; warns of what is still missing
    for w in tracker.warnings:
        say(f"warning: {w}")
    return summary


def _stopped_short(session: Session, finished: int, refit: bool) -> None:
    """The search ended before the budget without an interrupt or failures: the timeout,
    or (for the parent of ``--workers``) workers that stopped. Recorded on the study
    for ``tune status``; the test split stays sealed."""
    from tuner.storage.records import record_stop
    from tuner.views.status import duration

    config = session.config
    total = config.budget.n_trials
    if config.budget.timeout:
        why = f"budget.timeout ({duration(config.budget.timeout)})"
    else:
        why = "its workers stopping"
    record_stop(session.study, why, finished, total)
    if refit:
        session.say(
            f"stopped by {why} after {finished}/{total} trials; run the same command to continue. "
            "The test split stays sealed until the budget is reached "
            f"(or run `tune finish {config.source_file}` to score it now, as a search cut short)"
        )


def _init_args(sampler_name: str) -> list[str]:
    import inspect

    import optuna

    return list(inspect.signature(getattr(optuna.samplers, sampler_name).__init__).parameters)
