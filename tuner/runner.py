"""Run a study: data and splits → storage and study → trials → refit and test.

The order is the standard's: the config is already valid; the data and splits are
made (and checked) before any storage, study or MLflow run exists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tuner.errors import TunerError

__all__ = ["Interrupted", "Prepared", "prepare", "run_study"]


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so both close the study cleanly."""


@dataclass(frozen=True)
class Prepared:
    config: Any
    dataset: Any
    splits: Any
    split_fp: str
    warnings: tuple[str, ...] = ()  # pre-flight warnings, logged on the study's MLflow run


def prepare(config: Any) -> Prepared:
    """Load the data and make the splits; blocking data problems raise ``DataError``."""
    from objectives.data import load_dataset
    from objectives.splits import make_splits
    from tuner.preflight import check_dataset, check_splits

    d = config.data
    ds = load_dataset(
        d.source, base_dir=config.base_dir, target=d.target, image_size=d.image_size,
        root=d.root, download=d.download, cache_limit_mb=d.cache_limit_mb,
    )  # fmt: skip
    warnings = check_dataset(config, ds)
    splits = make_splits(ds.y, test_size=config.data.test_size, folds=config.data.folds, seed=config.seed)
    warnings += check_splits(config, ds, splits)
    return Prepared(config, ds, splits, splits.fingerprint(ds.fingerprint()), tuple(warnings))


def _worker_name(pid: int | None = None) -> str:
    """``host:pid``, recorded on each trial (``tuner.workers`` finds its dead workers' trials)."""
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def _config_params(config: Any) -> dict[str, Any]:
    """The study's settings for MLflow: everything but URLs (they may hold secrets)."""
    from tuner.storage import _scheme

    out: dict[str, Any] = {
        "seed": config.seed,
        "metric": config.objective.metric,
        "data.source": config.data.source,
        "data.test_size": config.data.test_size,
        "data.folds": config.data.folds,
        "data.normalize": config.data.normalize,
        "model.family": config.model.family if not config.model.factory else "factory",
        "model.factory": config.model.factory or "",
        "objective.function": config.objective.function or "",
        "data.image_size": config.data.image_size,
        "budget.n_trials": config.budget.n_trials,
        "sampler": config.sampler.name,
        "pruner": config.pruner.name if config.pruner else "none",
        "fold_pruning": config.fold_pruning.enabled,
        "divergence_guard": config.divergence.enabled,
        "storage.kind": _scheme(config.storage_url),
    }
    for k, v in config.training.model_dump().items():
        out[f"training.{k}"] = v
    for k, v in config.sampler.args.items():
        out[f"sampler.{k}"] = v
    for k, v in (config.pruner.args if config.pruner else {}).items():
        out[f"pruner.{k}"] = v
    return out


def run_study(
    config: Any,
    *,
    allow_changes: bool = False,
    refit: bool = True,
    say: Callable[[str], None] = print,
    live: bool | None = None,
    worker_rank: int | None = None,
    threads: int | None = None,
    optimize: bool = True,
) -> dict[str, Any]:
    """Run ``config``'s study to its budget (resuming it if it exists) and refit.

    Args:
        worker_rank: this worker's rank (``--workers``, ``$TUNER_WORKER_RANK``, or a
            Kubernetes ``$JOB_COMPLETION_INDEX``); its sampler seed is ``seed + rank``
            so workers do not sample the same points. Without one, a worker joining
            an existing study mixes its ``host:pid`` into the seed instead.
        threads: torch CPU threads (the worker's share of the cores) unless
            ``training.threads`` is set.
        optimize: False after local workers ran the trials: only refit.

    Returns the study summary (see ``tuner.report.summarize``).
    """
    import optuna

    from objectives.cv import CrossValidatedObjective, Reference, paired_sd
    from objectives.training import resolve_device
    from tuner.lockbox import score_best
    from tuner.progress import Progress
    from tuner.registry import build_pruner, build_sampler
    from tuner.report import summarize
    from tuner.storage import build_storage, describe
    from tuner.study import (
        FINISHED,
        Budget,
        BudgetReached,
        close_stale,
        open_study,
        shared_parent_run,
    )
    from tuner.tracking import open_tracker
    from tuner.workers import resolve_rank, unnamed_worker_offset

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prep = prepare(config)
    import torch

    threads = config.training.threads or threads or max(1, (os.cpu_count() or 1))
    torch.set_num_threads(threads)
    device = resolve_device(config.training.device)
    from objectives.devices import resolve_amp

    resolve_amp(config.training.amp, device)  # amp: true without CUDA fails before any storage

    from tuner.resilience import check_storage_writable

    check_storage_writable(config.storage_url)  # before MLflow gets an experiment
    tracker = open_tracker(config)  # checks MLflow is reachable before the study exists
    if optimize:
        tracker.start_writer()  # warms up (imports MLflow) while the study is set up
    storage = build_storage(config.storage_url)
    sampler_args = {"seed": config.seed, **config.sampler.args} if "seed" in _init_args(
        config.sampler.name) else dict(config.sampler.args)
    rank = resolve_rank(worker_rank)
    if rank and sampler_args.get("seed") is not None:
        sampler_args["seed"] = int(sampler_args["seed"]) + rank
    sampler = build_sampler(config.sampler.name, sampler_args)
    pruner = build_pruner(config.pruner.name, config.pruner.args) if config.pruner else optuna.pruners.NopPruner()
    if config.pruner and config.fold_pruning.pruner_peers == "finished":
        from tuner.peers import FinishedPeers

        pruner = FinishedPeers(pruner)
    study, created = open_study(
        config, storage, split_fp=prep.split_fp, sampler=sampler, pruner=pruner,
        allow_changes=allow_changes,
    )
    if rank is None and not created and sampler_args.get("seed") is not None:
        # Joined without a rank: another worker may hold the same seed right now.
        sampler_args["seed"] = int(sampler_args["seed"]) + unnamed_worker_offset(_worker_name())
        study.sampler = build_sampler(config.sampler.name, sampler_args)
    say(f"{'created' if created else 'resuming'} study {config.name!r} in {describe(config.storage_url)}")
    shared_parent_run(
        study, tracker, created, _config_params(config), {"tuner.split_fingerprint": prep.split_fp}
    )
    tracker.close_orphans(study.get_trials(deepcopy=False))
    import numpy as np

    from tuner.diagnose import CurveRecorder, chance_level, record_diagnosis
    from tuner.preflight import log_warnings

    for w in prep.warnings:
        say(f"pre-flight warning: {w}")
    log_warnings(tracker, list(prep.warnings))

    metric = config.objective.metric
    chance = chance_level(
        metric, np.bincount(prep.dataset.y[prep.splits.trainval], minlength=prep.dataset.n_classes)
    )
    worker = _worker_name()

    def reference() -> Reference | None:
        try:
            best = study.best_trial
        except ValueError:
            return None
        scores = best.user_attrs.get("fold_scores")
        if not scores:
            return None
        others = [
            t.user_attrs.get("fold_scores") or []
            for t in study.get_trials(deepcopy=False)
            if t.state.name in FINISHED and t.number != best.number
        ]
        return Reference(best.number, list(scores), paired_sd(others, scores))

    objective = CrossValidatedObjective(config, prep.dataset, prep.splits, device, reference)

    interrupts = _Interrupts()

    def trial_fn(trial: optuna.Trial) -> float:
        interrupts.check()  # held since Optuna created this trial: it ends FAIL, cleanly
        if not budget.claim(trial.number):
            trial.set_user_attr("surplus", True)
            raise BudgetReached(
                "surplus: other workers claimed the rest of the budget first; nothing was trained"
            )
        params = config.search_space.suggest(trial)
        trial.set_user_attr("worker", worker)
        run = tracker.start_trial(
            trial.number, params, metric, worker,
            on_run_id=lambda run_id: trial.set_user_attr("mlflow_run_id", run_id),
        )
        curves = CurveRecorder(run)  # keeps the curves for the trial's diagnosis
        try:
            with interrupts.allowed():
                value = objective(trial, params, curves)
        except optuna.TrialPruned:
            record_diagnosis(trial, curves, metric, chance)
            run.end("pruned", attrs=trial.user_attrs)
            raise
        except KeyboardInterrupt:
            run.end("interrupted", attrs=trial.user_attrs)
            raise
        except Exception as e:
            trial.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
            run.end("failed", attrs=trial.user_attrs, error=e)
            raise
        record_diagnosis(trial, curves, metric, chance)
        run.end("complete", value=value, attrs=trial.user_attrs)
        return value

    total = config.budget.n_trials
    deadline = time.monotonic() + config.budget.timeout if config.budget.timeout else None
    budget = Budget(study, storage, total, tracker, deadline=deadline)
    finished = budget.finished()
    progress = Progress(total, finished, metric, live=live)
    stop = {"failures": 0, "reason": ""}

    def waiting(finished: int, running: int) -> None:
        say(
            f"{finished}/{total} trials finished and {running} running on other workers: "
            "waiting, in case one fails and must be replaced"
        )

    def after_trial(st: optuna.Study, ft: optuna.trial.FrozenTrial) -> None:
        interrupts.check()  # the trial is told: stop here rather than start another
        if ft.user_attrs.get("surplus"):
            st.stop()  # another worker took the last slot; nothing ran
            return
        counts = budget.counts()
        n = counts[0]
        try:
            best = st.best_value
        except ValueError:
            best = None
        state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(ft.state.name, "failed")
        note = ft.user_attrs.get("pruned_reason") or ft.user_attrs.get("error") or ""
        progress.trial(ft.number, state, ft.value, best, n, note=_clip(note, 200))
        stop["failures"] = stop["failures"] + 1 if state == "failed" else 0
        if stop["failures"] >= config.budget.max_consecutive_failures:
            stop["reason"] = (
                f"{stop['failures']} trials in a row failed (last: {note}); stopping rather than "
                "burning the budget. Fix the error, then re-run to resume"
            )
            st.stop()
        else:
            with interrupts.allowed():
                if not budget.wait_for_slot(waiting, counts):
                    st.stop()

    interrupted = False
    restore = interrupts.install()
    try:
        # No n_trials: failed trials do not count, so the study runs until the budget's
        # finished trials exist (or the timeout, or too many failures in a row).
        with interrupts.allowed():
            go = optimize and budget.wait_for_slot(waiting)
        if go:
            with _quiet_surplus():
                study.optimize(
                    trial_fn, timeout=config.budget.timeout,
                    callbacks=[after_trial], catch=(Exception,), gc_after_trial=False,
                )
        interrupts.check()  # one that came after the last trial's callback
    except KeyboardInterrupt:
        interrupted = True
    except (optuna.exceptions.StorageInternalError, OSError) as e:
        # Disk full, read-only file, database gone: the finished trials are committed.
        from tuner.errors import StorageError
        from tuner.secrets import mask_secrets

        restore()
        progress.close()
        tracker.close_parent("FAILED")
        for w in tracker.settle():
            say(f"warning: {w}")
        cause = e.__cause__ or e.__context__ or e
        raise StorageError(
            f"the study storage ({describe(config.storage_url)}) stopped accepting writes: "
            f"{mask_secrets(str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__)}. "
            "Trials finished before this are kept; free disk space or fix the storage, then run "
            "the same command to resume"
        ) from None
    finally:
        restore()
        progress.close()
        # A worker killed meanwhile left its trial RUNNING: fail it once its heartbeat
        # is stale (which enqueues its retry) and close its MLflow run.
        close_stale(study, tracker)

    finished = budget.finished()
    summary_extra: dict[str, Any] = {}
    if interrupted:
        tracker.close_parent("KILLED")
        for w in tracker.settle():
            say(f"warning: {w}")
        say(f"interrupted after {finished}/{total} finished trials; run the same command to resume")
        raise KeyboardInterrupt
    if stop["reason"]:
        tracker.close_parent("FAILED")
        for w in tracker.settle():
            say(f"warning: {w}")
        raise TunerError(stop["reason"])
    has_complete = any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False))
    if refit and has_complete and (finished >= total or config.budget.timeout):
        try:
            summary_extra["test"] = score_best(
                config, prep.dataset, prep.splits, study, tracker, device, prep.split_fp, say=say
            )
        except KeyboardInterrupt:
            tracker.close_parent("KILLED")
            raise
    elif not has_complete:
        say("no trial completed, so there is nothing to refit; the test split stays unscored")
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    if not running:
        from tuner.plots import log_study_plots

        plots = log_study_plots(tracker, study, config)  # PNGs on the parent run; never raises
        if plots:  # so that `tune report` lists them without opening MLflow
            study.set_user_attr("tuner_study_plots", plots)
        tracker.close_parent("FINISHED")
    tracker.settle()  # retries what an MLflow outage held back; warns of what is still missing
    for w in tracker.warnings:
        say(f"warning: {w}")
    return summarize(config, study, extra=summary_extra)


class _Interrupts:
    """Ctrl-C and SIGTERM during the search, raised only where that is safe.

    Inside training and the budget wait they raise at once. Elsewhere (Optuna creating
    or telling a trial, MLflow opening or closing its run) they are held until the next
    of those points, the next trial's start or the end of the trial's callback: an
    interrupt raised inside Optuna's own bookkeeping left a trial RUNNING that no one
    would ever finish.
    """

    def __init__(self) -> None:
        self.pending = False
        self.safe = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.safe:
            raise Interrupted()
        self.pending = True

    def check(self) -> None:
        if self.pending:
            raise Interrupted()

    @contextlib.contextmanager
    def allowed(self) -> Iterator[None]:
        self.check()
        self.safe = True
        try:
            yield
        finally:
            self.safe = False

    def install(self) -> Callable[[], None]:
        """Handle SIGINT and SIGTERM; returns what puts the previous handlers back."""
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for s, handler in previous.items():
                signal.signal(s, handler)

        return restore


@contextlib.contextmanager
def _quiet_surplus() -> Iterator[None]:
    """Keep Optuna from logging a surplus trial (see ``Budget.claim``) as a failure."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        return "BudgetReached" not in record.getMessage()

    logger = logging.getLogger("optuna")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _init_args(sampler_name: str) -> list[str]:
    import inspect

    import optuna

    return list(inspect.signature(getattr(optuna.samplers, sampler_name).__init__).parameters)


def cv_text(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def _clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary with an ellipsis, for one progress line."""
    if len(text) <= limit:
        return text
    return text[: text.rfind(" ", 0, limit - 1)].rstrip(" ,;(") + " …"
