"""One trial, as the search runs it: what Optuna calls for each trial (claim a budget
slot, sample the space, train with cross-validation, record the diagnosis and close
the trial's MLflow run) and what it calls after each (the progress line, failures in
a row, waiting for a slot)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuner.run.budget import Budget, BudgetReached
from tuner.run.write_behind import BufferedTrial, WriteBehind, write_mode

if TYPE_CHECKING:
    import optuna

    from objectives.cv import CrossValidatedObjective
    from tuner.config import StudyConfig
    from tuner.run.best import StudyBest
    from tuner.run.interrupts import Interrupts
    from tuner.views.progress import Progress

__all__ = ["AfterTrial", "BestSoFar", "TrialFunction"]


class BestSoFar:
    """The study's best value, looked up once per trial: while the trial is diagnosed
    (before Optuna tells it), then brought up to date with the trial's own value for
    the progress line after. Each lookup reads the study's trial list (``StudyBest``)."""

    def __init__(self, view: StudyBest) -> None:
        self.view = view
        self.number: int | None = None  # the trial it was looked up for
        self.value: float | None = None

    def lookup(self, number: int) -> float | None:
        """The study's best value now (None before any trial completed), for trial ``number``."""
        self.number = None  # until the lookup succeeds
        value = self.view.best_value()
        self.number, self.value = number, value
        return value

    def after(self, ft: optuna.trial.FrozenTrial) -> float | None:
        """The best value once ``ft`` is told: the value looked up for it, or ``ft``'s own
        if that is better; looked up again when there is none for ``ft`` (it failed
        before its diagnosis, or the lookup did)."""
        import optuna

        if self.number != ft.number:
            return self.lookup(ft.number)
        best, value = self.value, ft.value
        if ft.state != optuna.trial.TrialState.COMPLETE or value is None:
            return best
        if best is None:
            return value
        return max(best, value) if self.view.maximize else min(best, value)


class TrialFunction:
    """What ``study.optimize`` calls for each trial."""

    def __init__(
        self,
        config: StudyConfig,
        objective: CrossValidatedObjective,
        tracker: Any,
        budget: Budget,
        interrupts: Interrupts,
        chance: float,
        worker: str,
        progress: Progress,
        storage: Any,
        best: BestSoFar,
        busy: int = 0,
    ) -> None:
        self.config, self.objective, self.tracker = config, objective, tracker
        self.best = best
        self.budget, self.interrupts = budget, interrupts
        self.chance, self.worker, self.progress = chance, worker, progress
        self.in_flight: _InFlight | None = None
        self.storage = storage
        # the trials' reports and attributes: off the training process when torch and the
        # ``busy`` cores (other work) leave a core free, otherwise inline (write_mode)
        self.writes = WriteBehind(storage, config.storage_url, write_mode(busy=busy))
        self._study_id: int | None = None

    def buffered(self, trial: optuna.Trial) -> BufferedTrial:
        """``trial`` with its reports and user attributes written behind."""
        if self._study_id is None:
            self._study_id = self.storage.get_study_id_from_name(trial.study.study_name)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self._study_id, trial.number)
        return BufferedTrial(trial, self.storage, trial_id, self.writes)

    def close(self) -> None:
        """Stop the storage writer (every trial's writes are flushed before it is told)."""
        self.writes.close()

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from tuner.views.diagnose import CurveRecorder, record_diagnosis

        metric = self.config.objective.metric
        self.in_flight = None
        self.interrupts.check()  # held since Optuna created this trial: it ends FAIL, cleanly
        if not self.budget.claim(trial.number):
            trial.set_user_attr("surplus", True)
            raise BudgetReached(
                "surplus: other workers claimed the rest of the budget first; nothing was trained"
            )
        params = self.config.search_space.suggest(trial)
        bt = self.buffered(trial)
        bt.set_user_attr("worker", self.worker)
        run = self.tracker.start_trial(
            trial.number,
            params,
            metric,
            self.worker,
            on_run_id=lambda run_id: bt.set_user_attr("mlflow_run_id", run_id),
        )
        flight = self.in_flight = _InFlight(trial.number, bt.flush)
        try:
            curves = CurveRecorder(run)  # keeps the curves for the trial's diagnosis
            reporter = _Checked(
                self.progress.reporter(
                    trial.number, curves, self.config.data.folds, self.config.training.max_epochs
                ),
                self.interrupts,
            )
            best = functools.partial(self.best.lookup, trial.number)
            with self.interrupts.allowed():
                value = self.objective(bt, params, reporter)
            record_diagnosis(bt, curves, metric, self.chance, best)
            flight.state, flight.value = "complete", value
            return value
        except optuna.TrialPruned:
            record_diagnosis(bt, curves, metric, self.chance, best)
            flight.state = "pruned"
            raise
        except KeyboardInterrupt:
            flight.state = "interrupted"
            raise
        except Exception as e:
            try:  # the storage may be what failed
                bt.set_user_attr("error", f"{type(e).__name__}: {e}"[:2000])
            except Exception:
                pass
            raise
        finally:
            error = sys.exc_info()[1] if flight.state == "failed" else None
            try:
                run.record_id()  # among the trial's writes, which Optuna waits for:
                # it tells the trial finished only once its values are stored; a storage
                # that fails here raises into the storage-failure handling (``abandon``).
                bt.flush()
            finally:
                # Whatever happened, even the storage failing mid-trial: the run is closed,
                # after the flush, so that its end time is the trial's (the first trial's
                # flush waits for the storage writer child to start).
                run.end(flight.state, value=flight.value, attrs=bt.user_attrs, error=error)

    def abandon(self, study: optuna.Study) -> bool:
        """After the storage failed inside Optuna's loop: record the trial in flight as
        it ended (complete, pruned or failed), since Optuna could not.

        Returns:
            True when the storage took the write (or had it already), so that it is
            working again; False when it still fails.
        """
        import optuna

        done, self.in_flight = self.in_flight, None
        try:
            if done is None:  # the failure came between trials: is the storage back?
                study.get_trials(deepcopy=False)
                return True
            stored = study.get_trials(deepcopy=False)[done.number]  # a trial's number is its index
            if stored.state != optuna.trial.TrialState.RUNNING:
                return True  # Optuna's write went through before the failure
            done.flush()  # the trial's reports and attributes the storage missed
            if done.value is not None:  # it completed
                study.tell(done.number, done.value)
            else:
                state = optuna.trial.TrialState.PRUNED if done.state == "pruned" else None
                study.tell(done.number, state=state or optuna.trial.TrialState.FAIL)
            return True
        except Exception:
            return False


class _InFlight:
    """The trial being run, and how it ended (``failed`` until it ends otherwise; a
    value only once it completed), until Optuna has recorded it."""

    def __init__(self, number: int, flush: Callable[[], None]) -> None:
        self.number, self.flush = number, flush
        self.state = "failed"
        self.value: float | None = None


class AfterTrial:
    """Optuna's callback after each trial: the progress line, a stop after too many
    failures in a row (``stop_reason``), and the wait for a budget slot."""

    def __init__(
        self,
        config: StudyConfig,
        budget: Budget,
        progress: Progress,
        interrupts: Interrupts,
        say: Callable[[str], None],
        best: BestSoFar,
    ) -> None:
        self.config, self.budget, self.progress = config, budget, progress
        self.best = best
        self.interrupts, self.say = interrupts, say
        self.failures = 0
        self.stop_reason = ""

    def waiting(self, finished: int, running: int) -> None:
        self.say(
            f"{finished}/{self.config.budget.n_trials} trials finished and {running} running on "
            "other workers: waiting, in case one fails and must be replaced"
        )

    def __call__(self, st: optuna.Study, ft: optuna.trial.FrozenTrial) -> None:
        self.interrupts.check()  # the trial is told: stop here rather than start another
        if ft.user_attrs.get("surplus"):
            st.stop()  # another worker took the last slot; nothing ran
            return
        counts = self.budget.counts()
        best = self.best.after(ft)
        state = {"COMPLETE": "complete", "PRUNED": "pruned"}.get(ft.state.name, "failed")
        note = ft.user_attrs.get("pruned_reason") or ft.user_attrs.get("error") or ""
        self.progress.trial(ft.number, state, ft.value, best, counts[0], note=_clip(note, 200))
        self.failures = self.failures + 1 if state == "failed" else 0
        if self.failures >= self.config.budget.max_consecutive_failures:
            self.stop_reason = (
                f"{self.failures} trials in a row failed (last: {note}); stopping rather than "
                "burning the budget. Fix the error, then re-run to resume"
            )
            st.stop()
        else:
            with self.interrupts.allowed():
                if not self.budget.wait_for_slot(self.waiting, counts):
                    st.stop()


class _Checked:
    """A trial's reporter that raises a held interrupt after each epoch and fold. A signal
    that lands where it cannot raise (a finalizer the garbage collector runs, say one of
    SQLAlchemy's) is only marked pending: without this it would wait for the trial's end,
    and the trial would train to completion after Ctrl-C or SIGTERM."""

    def __init__(self, inner: Any, interrupts: Interrupts) -> None:
        self.inner, self.interrupts = inner, interrupts

    def epoch(self, record: Any, step: int) -> None:
        self.inner.epoch(record, step)
        self.interrupts.check()

    def fold_done(self, fold: int, score: float) -> None:
        self.inner.fold_done(fold, score)
        self.interrupts.check()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _clip(text: str, limit: int) -> str:
    """``text`` cut at a word boundary with an ellipsis, for one progress line."""
    if len(text) <= limit:
        return text
    return text[: text.rfind(" ", 0, limit - 1)].rstrip(" ,;(") + " …"
