"""MLflow tracking: one experiment and parent run per study, a child run per trial,
a refit run with the test score. Tracking observes; it never steers the search.

Uses ``MlflowClient`` with explicit run ids (no global active-run state) and logs
metrics with one ``log_batch`` per fold: a local SQLite store takes ~120 single
calls/s but ~5,000 metrics/s batched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import TunerError
from tuner.secrets import mask_secrets
from tuner.tracking.experiment_view import EXPERIMENT_KIND, VIEW_TAG, view_state
from tuner.tracking.null import NullTracker
from tuner.tracking.outage import Outage, bound_http_retries, check_tracking_database
from tuner.tracking.rows import now_ms
from tuner.tracking.trial_run import TrialRun

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["Tracker", "open_tracker"]


class Tracker:
    """One study's MLflow experiment and parent run."""

    enabled = True

    def __init__(self, uri: str, experiment: str, study_name: str, metric: str | None = None) -> None:
        from mlflow.tracking import MlflowClient

        bound_http_retries()
        if uri.startswith("sqlite:"):
            from tuner.storage.backends import enable_fast_sqlite

            enable_fast_sqlite()  # every process that opens the store: no fsync per commit
        from tuner.tracking.writer import mode

        self.uri = uri
        self.experiment = experiment
        self.study_name = study_name
        # the experiment's tags tuner sets: its kind, and the run table's view (needs the metric)
        self._experiment_tags = {**EXPERIMENT_KIND, **({VIEW_TAG: view_state(metric)} if metric else {})}
        self.writer_mode = mode()
        self._writer: Any = None
        self.warnings: list[str] = []
        self.outage = Outage()  # retries writes; remembers runs left incomplete
        self._experiment_id: str | None = None
        try:
            # MLflow retries a database it cannot reach for minutes: try it once first.
            check_tracking_database(uri)
            self.client = MlflowClient(tracking_uri=uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is not None:
                if exp.lifecycle_stage == "deleted":
                    raise TunerError(
                        f"MLflow experiment {experiment!r} is deleted: restore it in the MLflow UI, "
                        "or set mlflow.experiment to another name"
                    )
                self._experiment_id = exp.experiment_id
                if exp.tags.get("tuner.study"):  # made by tuner: an older one may lack a tag
                    for key, value in self._experiment_tags.items():
                        # the view follows the study's metric; a kind someone set is kept
                        stale = exp.tags.get(key) != value if key == VIEW_TAG else key not in exp.tags
                        if stale:
                            self.client.set_experiment_tag(exp.experiment_id, key, value)
        except TunerError:
            raise
        except Exception as e:
            raise _unreachable(uri, e) from None
        self.parent_id: str | None = None

    @property
    def experiment_id(self) -> str:
        """The study's experiment, created on first use: only once the study storage
        is open, so that a storage that fails its checks leaves no experiment behind."""
        if self._experiment_id is None:
            try:
                self._experiment_id = self.client.create_experiment(
                    self.experiment,
                    artifact_location=_artifact_location(self.uri, self.experiment),
                    tags={"tuner.study": self.study_name, **self._experiment_tags},
                )
            except Exception as e:
                exp = self.client.get_experiment_by_name(self.experiment)  # another worker made it
                if exp is None:
                    raise _unreachable(self.uri, e) from None
                self._experiment_id = exp.experiment_id
        return self._experiment_id

    def warn(self, text: str) -> None:
        self.warnings.append(mask_secrets(text))

    # -- parent ---------------------------------------------------------------------------
    def open_parent(self, existing: str | None, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """Reuse the study's parent run (marking it running again) or create it."""
        if existing:
            try:
                run = self.client.get_run(existing)
                if run.info.lifecycle_stage == "active":
                    self.client.update_run(existing, status="RUNNING")
                    self.parent_id = existing
                    return existing
            except Exception:
                pass  # deleted or from another store: make a new one
        from mlflow.entities import Param, RunTag

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"study {self.study_name}",
            tags={"tuner.role": "study", "tuner.study": self.study_name, **tags},
        )
        self.parent_id = run.info.run_id
        plist = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(plist), 90):
            self.client.log_batch(self.parent_id, params=plist[i : i + 90])
        self.client.log_batch(self.parent_id, tags=[RunTag("mlflow.note.content", _note(self.study_name))])
        return self.parent_id

    def close_parent(self, status: str) -> None:
        self.flush_trials()  # the trial runs first: the parent ends after its children
        if self.parent_id:
            parent = self.parent_id
            ok, _ = self.outage.call(self.client.set_terminated, parent, status=status)
            if not ok:
                self.outage.defer(
                    "the study's parent run", lambda: self.client.set_terminated(parent, status=status)
                )

    def log_test_looks(self, looks: list[Mapping[str, Any]], metric: str) -> None:
        """The lockbox on the study's parent run: ``test_<metric>`` is the first look's
        score (the unbiased estimate), ``test_looks`` how many there have been, and the
        ``tuner.test_looks`` tag lists each look's selection."""
        if not self.parent_id or not looks:
            return
        from mlflow.entities import Metric, RunTag

        parent, first, ts = self.parent_id, looks[0], now_ms()
        metrics = [
            Metric(f"test_{metric}", float(first["score"]), ts, 0),
            Metric("test_looks", float(len(looks)), ts, 0),
        ]
        text = "; ".join(
            f"look {i}: trial #{look['trial_number']} {metric} {look['score']:.4f} at {look['scored_at']}"
            + (" (search cut short)" if look.get("search_cut_short") else "")
            + (" (the unbiased estimate)" if i == 1 else "")
            for i, look in enumerate(looks, 1)
        )
        tags = [RunTag("tuner.test_looks", text[:5000])]

        def write() -> None:
            self.client.log_batch(parent, metrics=metrics, tags=tags)

        ok, _ = self.outage.call(write)
        if not ok:
            self.outage.defer("the study's parent run (test looks)", write)

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        """The study's summary on its parent run (``tuner.tracking.summary``). The best
        params are params the first time; MLflow params never change, so a later, different
        best shows in the ``tuner.best.*`` tags and the description."""
        if not self.parent_id:
            return
        from mlflow.entities import Param, RunTag

        from tuner.tracking.summary import summary_batch

        best = summary.get("best") or {}
        runs = {best["number"]: best.get("mlflow_run_id")} if best else {}
        metrics, params, note = summary_batch(summary, self.experiment_id, runs)
        parent = self.parent_id

        def write() -> None:
            have = self.client.get_run(parent).data.params
            fresh = [Param(k, v[:6000]) for k, v in params.items() if k not in have]
            tags = [RunTag("mlflow.note.content", note)]
            tags += [RunTag(f"tuner.best.{k}", v[:5000]) for k, v in params.items()]
            self.client.log_batch(parent, metrics=metrics, params=fresh, tags=tags)

        ok, _ = self.outage.call(write)
        if not ok:
            self.outage.defer("the study's parent run (summary)", write)

    def settle(self) -> list[str]:
        """Retry the writes an MLflow outage held back; one warning per run still incomplete."""
        self.flush_trials()
        if self._writer is not None:
            self._writer.close()
        incomplete = self.outage.settle()
        if not incomplete:
            return []
        names = ", ".join(incomplete)
        text = (
            f"MLflow tracking at {mask_secrets(self.uri)} was unreachable ({self.outage.last_error}); "
            f"these MLflow runs are incomplete (metrics, final state or traceback missing): {names}. "
            "The trials themselves are safe in the study storage"
        )
        self.warn(text)
        return [text]

    # -- children -------------------------------------------------------------------------
    def _child(self, name: str, tags: Mapping[str, str], start_time: int | None = None) -> str:
        assert self.parent_id is not None
        run = self.client.create_run(
            self.experiment_id,
            start_time=start_time,
            run_name=name,
            tags={"mlflow.parentRunId": self.parent_id, "tuner.study": self.study_name, **tags},
        )
        return run.info.run_id

    # -- the trial runs' writer process (tuner.tracking.writer) -----------------------------------
    def start_writer(self) -> None:
        """Start the trial runs' writer process now, so that it has imported MLflow and
        opened the store by the time the first trial ends (it takes a few seconds)."""
        if self.writer_mode != "process" or self._writer is not None:
            return
        from tuner.tracking.writer import Writer

        try:
            self._writer = Writer(self.uri, self.experiment, self.study_name)
        except Exception as e:  # no process to be had: write inline, as before
            self.writer_mode = "inline"
            self.warn(f"MLflow writes stay in the study process: {type(e).__name__}: {e}")

    def _trial_writer(self) -> Any:
        if self.writer_mode != "process" or not self.parent_id:
            return None
        self.start_writer()
        return self._writer if self._writer is not None and self._writer.alive else None

    def flush_trials(self) -> None:
        """Wait for the writer process to make every trial-run write sent so far; the
        runs it could not complete join the study's list of incomplete runs."""
        w = self._writer
        if w is None:
            return
        if w.alive:
            incomplete, last_error = w.flush()
            self.outage.incomplete.update(incomplete)
            if incomplete and last_error:
                self.outage.last_error = last_error
        for why in w.lost:
            self.warn(
                f"{why}; trial runs written after that were written inline, and a run it "
                "was writing may be incomplete (the trials themselves are safe)"
            )
        w.lost.clear()

    def start_trial(
        self,
        number: int,
        params: Mapping[str, Any],
        metric: str,
        worker: str,
        on_run_id: Callable[[str], None] | None = None,
        started_ms: int | None = None,
    ) -> Any:
        """The trial's run: written by the writer process, or inline. ``on_run_id`` is
        called with the run's id once it exists (to record it on the trial);
        ``started_ms``, when the trial started (the writer makes the run a moment later)."""
        from mlflow.entities import Param

        writer = self._trial_writer()
        if writer is not None and writer.send(
            "start", number, dict(params), metric, worker, self.parent_id, now_ms()
        ):
            from tuner.tracking.writer import RemoteTrialRun

            return RemoteTrialRun(writer, number, metric, on_run_id)

        made: list[str] = []

        def create() -> str:  # may be repeated after an outage: one run, however often
            if not made:
                made.append(
                    self._child(
                        f"trial-{number:03d} running",
                        {"tuner.role": "trial", "tuner.trial": str(number), "tuner.worker": worker},
                        start_time=started_ms,
                    )
                )
            return made[0]

        # MLflow down now: the trial still runs, and its run is made at its next write.
        ok, run_id = self.outage.call(create)
        run = TrialRun(self, run_id if ok else None, number, metric, create=None if ok else create)
        run._params = [Param(k, str(v)) for k, v in params.items()]
        if on_run_id is not None and run.run_id:
            try:
                on_run_id(run.run_id)
            except BaseException as e:  # the storage failed: the run must not stay RUNNING
                run.end("failed", error=e)
                raise
        return run

    def start_refit(self, number: int, params: Mapping[str, Any]) -> str | None:
        """The refit's run, or None while MLflow is down (the refit and its test score,
        recorded on the study, do not depend on tracking)."""
        from mlflow.entities import Param

        def create() -> str:
            run_id = self._child(
                f"refit trial-{number:03d}", {"tuner.role": "refit", "tuner.trial": str(number)}
            )
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
            return run_id

        ok, run_id = self.outage.call(create)
        if not ok:
            self.outage.incomplete[f"the refit of trial {number} (not logged)"] = self.outage.last_error
        return run_id if ok else None

    def close_orphans(self, trials: list[Any]) -> int:
        """End trial runs left RUNNING whose trial is no longer running.

        Such a run belongs to a worker that died (its trial failed by heartbeat, or
        stopped before recording the run's id), or to a trial that ended while MLflow
        was down. One search for the parent's RUNNING trial runs, not a lookup per
        trial, so the cost does not grow with the study. A trial still RUNNING is
        left alone: another worker may be in the middle of it.
        """
        if not self.parent_id:
            return 0
        self.flush_trials()  # a run the writer is still closing is no orphan
        by_number = {t.number: t for t in trials}
        try:
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}' and "
                "tags.`tuner.role` = 'trial' and attributes.status = 'RUNNING'",
                max_results=1000,
            )
        except Exception as e:
            self.warn(f"could not look for orphan trial runs: {e}")
            return 0
        closed = 0
        for run in runs:
            t = by_number.get(int(run.data.tags.get("tuner.trial", "-1")))
            recorded = t.user_attrs.get("mlflow_run_id") if t is not None else None
            if t is not None and t.state.name == "RUNNING" and recorded in (None, run.info.run_id):
                continue
            # the trial's own run, finished while MLflow was down: close it as it ended
            ended = t is not None and recorded == run.info.run_id and t.state.name in ("COMPLETE", "PRUNED")
            status = "FINISHED" if ended else "KILLED"
            label = t.state.name.lower() if ended and t is not None else "killed"
            number = int(run.data.tags.get("tuner.trial", "-1"))
            try:
                self.client.set_tag(run.info.run_id, "tuner.state", label)
                self.client.update_run(run.info.run_id, status=status, name=f"trial-{number:03d} {label}")
                self.client.set_terminated(run.info.run_id, status=status)
                closed += 1
            except Exception as e:
                self.warn(f"could not close orphan run of trial {number}: {e}")
        return closed


def open_tracker(config: StudyConfig) -> Tracker | NullTracker:
    if not config.mlflow.enabled:
        return NullTracker()
    from tuner.storage.writable import check_storage_writable

    # A local store on a full or read-only disk: say so before MLflow creates its file.
    check_storage_writable(config.tracking_uri, "the MLflow store", "mlflow.tracking_uri")
    return Tracker(config.tracking_uri, config.experiment_name, config.name, config.objective.metric)


def _unreachable(uri: str, e: BaseException) -> TunerError:
    return TunerError(
        f"cannot reach MLflow tracking at {mask_secrets(uri)}: "
        f"{mask_secrets(str(e).splitlines()[0] if str(e) else type(e).__name__)}. "
        "Start the tracking server, fix mlflow.tracking_uri, or set mlflow.enabled: false"
    )


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts of a local store go beside its database, not into the CWD."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :])
        return (db.parent / "mlartifacts" / experiment).resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        return None
    return None


def _note(study: str) -> str:
    return (
        f"tuner study **{study}**. Child runs: one per trial (`trial-NNN state`), and "
        "`refit trial-NNN` with the held-out test score of the best configuration."
    )
