"""The test-set lockbox: the held-out split is scored once, for the refit of the
best configuration, and every scoring is recorded on the study.

Scoring it again for a *different* selection (say, after more trials found a new
best) is allowed but loud, and counted: choosing among configurations by their
test score is exactly the tuning-on-the-test-set mistake the split exists to stop.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tuner.run.mistakes import find_mistakes, log_mistakes
from tuner.run.takeaway import take_away
from tuner.storage.records import LOCKBOX_ATTR, record_scorings, scorings
from tuner.views.progress import Heartbeat

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["LOCKBOX_ATTR", "score_best", "scorings"]


def score_best(
    config: StudyConfig,
    dataset: Any,
    splits: Any,
    study: Any,
    storage: Any,
    tracker: Any,
    device: Any,
    split_fp: str,
    say: Any = print,
    trials_finished: int | None = None,
) -> dict[str, Any]:
    """Refit the best trial's params on all non-test rows and score the test split.

    One process at a time (``refit_turn``): workers on several machines that reach the
    budget together refit once; the others wait and reuse the record.
    ``trials_finished``: how far the search had got; the record says whether the
    search was cut short of its budget (``tune finish``).

    Returns the scoring record (the existing one when this selection was scored).
    """
    from tuner.run.refit_claim import refit_turn

    best = study.best_trial
    with refit_turn(study, storage, say):
        history = scorings(study)  # read under the claim: no other scoring is in flight
        for entry in history:
            if entry["trial_number"] == best.number and entry.get("split_fingerprint") == split_fp:
                return {**entry, "reused": True}
        if history:
            say(
                f"WARNING: the held-out test split was already scored {len(history)} time(s) "
                f"(for trial #{history[-1]['trial_number']}); scoring it again for trial #{best.number}. "
                "Each extra look makes the test score more optimistic: report the first one, or "
                "fence off fresh test data."
            )
        return _score(
            config, dataset, splits, best, study, tracker, device, split_fp, say, trials_finished, history
        )


def _score(
    config: StudyConfig,
    dataset: Any,
    splits: Any,
    best: Any,
    study: Any,
    tracker: Any,
    device: Any,
    split_fp: str,
    say: Any,
    trials_finished: int | None,
    history: list[dict[str, Any]],
) -> dict[str, Any]:
    """The refit of ``best`` (a frozen trial) and the one scoring, recorded on the study
    and its MLflow refit run."""
    started = time.perf_counter()
    params = config.search_space.complete(best.params)  # the fixed values too
    refit_id = tracker.start_refit(best.number, params) if tracker.enabled else None
    epochs, epochs_rule = refit_plan(config, best)
    say(
        f"refit: training trial #{best.number}'s configuration on all {len(splits.trainval)} "
        f"non-test rows for {epochs} epoch(s) ({epochs_rule}), then scoring the held-out test split once"
    )
    try:
        model, y_test, pred, metrics, curve = _refit_and_score(
            config, dataset, splits, best, params, device, say, epochs
        )
        outcome = _outcome(dataset, splits.test, y_test, pred)  # test: dataset rows
        entry = {
            "trial_number": best.number,
            "params": params,
            "metric": config.objective.metric,
            "score": metrics[config.objective.metric],
            "metrics": metrics,
            "cv_mean": best.user_attrs.get("cv_mean", best.value),
            "cv_std": best.user_attrs.get("cv_std"),
            "n_test": int(len(y_test)),
            **_provenance(config, split_fp, trials_finished),
            "refit_seconds": round(time.perf_counter() - started, 2),
            "refit_epochs": epochs,
            "refit_epochs_rule": epochs_rule,
            "mlflow_run_id": refit_id,
            **outcome.record,
        }
        record_scorings(study, history + [entry])
        if tracker.enabled:
            tracker.log_test_looks(history + [entry], config.objective.metric)
        if refit_id:
            try:
                _log_refit(tracker, refit_id, entry, config, curve)
                outcome.log(tracker, refit_id, entry)
                taken = take_away(tracker, refit_id, entry, model, dataset, config, best, history, say)
                if taken:  # the model's address and registry version, beside the score
                    entry.update(taken)
                    record_scorings(study, history + [entry])
            except Exception as e:  # the score is on the study already; tracking must not undo it
                tracker.warn(f"the refit's MLflow run {refit_id} is incomplete: {e}")
            _end_run(tracker, refit_id)
        return {**entry, "reused": False, **outcome.extra}
    except BaseException as e:
        if refit_id:
            status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
            tracker.client.set_terminated(refit_id, status=status)
        raise


def _provenance(config: StudyConfig, split_fp: str, trials_finished: int | None) -> dict[str, Any]:
    """When, where and by whom the test split was scored, which split it was, and how far
    the search had got (short of its budget: ``tune finish``)."""
    return {
        "scored_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "user": _user(),
        "split_fingerprint": split_fp,
        "trials_finished": trials_finished,
        "budget": config.budget.n_trials,
        "search_cut_short": trials_finished is not None and trials_finished < config.budget.n_trials,
    }


@dataclass
class _Outcome:
    """What the scoring records beside the metrics (``record``), returns beside the
    record (``extra``), and logs on the refit run for its task (``log``)."""

    record: dict[str, Any]
    extra: dict[str, Any]
    log: Callable[[Any, str, dict[str, Any]], None]


def _outcome(dataset: Any, rows: np.ndarray, y_test: np.ndarray, pred: np.ndarray) -> _Outcome:
    """Regression: the largest errors, and the plots and predictions on the refit run.
    Classification: per-class recall and the most confident mistakes, the confusion matrix,
    report and PR curve."""
    if dataset.is_regression:
        from tuner.run.refit_regression import log_regression_refit, regression_record

        def log_regression(tracker: Any, run_id: str, entry: dict[str, Any]) -> None:
            log_regression_refit(tracker, run_id, rows, y_test, pred, entry)

        return _Outcome({**regression_record(rows, y_test, pred), "task": "regression"}, {}, log_regression)
    from sklearn.metrics import confusion_matrix

    mistakes = find_mistakes(_class_names(dataset), rows, y_test, pred)
    cm = confusion_matrix(y_test, pred.argmax(axis=1), labels=np.arange(dataset.n_classes))

    def log_classification(tracker: Any, run_id: str, entry: dict[str, Any]) -> None:
        _log_classification(tracker, run_id, cm, dataset, y_test, pred)
        log_mistakes(tracker, run_id, mistakes, dataset)  # never raises

    return _Outcome(mistakes.record(), {"confusion_matrix": cm.tolist()}, log_classification)


def _class_names(dataset: Any) -> list[str]:
    return dataset.classes or [str(i) for i in range(dataset.n_classes)]


def refit_plan(config: StudyConfig, best: Any) -> tuple[int, str]:
    """How many epochs the refit of ``best`` trains, and why: ``max_epochs`` without
    early stopping; with it, what the best trial's folds say (the refit has no
    validation rows to stop on; ``objectives.early_stopping.refit_epochs``)."""
    from objectives.early_stopping import EarlyStopping, refit_epochs

    max_epochs = config.training.max_epochs
    rule = EarlyStopping.resolve(config.training.early_stopping, config.search_space.complete(best.params))
    if rule is None:
        return max_epochs, "max_epochs, as early stopping is off"
    return refit_epochs(best.user_attrs.get("fold_epochs") or [], max_epochs, rule.restore_best)


def _refit_and_score(
    config: StudyConfig,
    dataset: Any,
    splits: Any,
    best: Any,
    params: dict[str, Any],
    device: Any,
    say: Any,
    epochs: int,
) -> tuple[Any, np.ndarray, np.ndarray, dict[str, float], list[Any]]:
    """Train the best configuration on every non-test row for ``epochs`` (a heartbeat
    line now and then), then predict the test split once: ``(model, y_test,
    predictions (class probabilities, or numbers in the user's units), metrics, the
    epoch records of its training)``."""

    from objectives.cv import train_final
    from objectives.lazy import device_rows
    from objectives.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, score
    from objectives.task import task_for

    beat = Heartbeat(say)
    curve: list[Any] = []

    def on_epoch(r: Any) -> None:
        curve.append(r)
        beat(f"refit of trial #{best.number}: epoch {r.epoch + 1}/{epochs}")

    model = train_final(
        config,
        dataset,
        splits.trainval,
        params,
        device,
        on_epoch=on_epoch,
        epochs=epochs,
    )
    X_test = device_rows(dataset.X, splits.test, device)
    y_test = dataset.y[splits.test]
    pred = task_for(config.task).predict(model, X_test)
    names = REGRESSION_METRICS if dataset.is_regression else CLASSIFICATION_METRICS
    return model, y_test, pred, {m: score(m, y_test, pred) for m in names}, curve


def _log_refit(
    tracker: Any, run_id: str, entry: dict[str, Any], config: StudyConfig, curve: list[Any]
) -> None:
    """The refit run's test metrics, cross-validation optimism, training curve and
    scoring record, for either task."""
    from mlflow.entities import Metric, RunTag

    client = tracker.client
    ts = int(time.time() * 1000)
    metrics = [Metric(f"test_{k}", float(v), ts, 0) for k, v in entry["metrics"].items()]
    if entry.get("cv_mean") is not None:
        metrics.append(Metric(f"cv_{entry['metric']}", float(entry["cv_mean"]), ts, 0))
        gap = entry["cv_mean"] - entry["score"]  # positive: cross-validation was optimistic
        gap = -gap if config.direction == "minimize" else gap
        metrics.append(Metric("validation_optimism", float(gap), ts, 0))
    metrics.append(Metric("refit_epochs", float(entry["refit_epochs"]), ts, 0))
    for r in curve:  # the refit's training curve: no validation rows, so train only
        metrics.append(Metric("train_loss", float(r.train_loss), ts, r.epoch))
        metrics.append(Metric(f"train_{entry['metric']}", float(r.train_score), ts, r.epoch))
    tags = [
        RunTag("tuner.test_scored_at", entry["scored_at"]),
        RunTag("tuner.refit_epochs_rule", entry["refit_epochs_rule"]),
    ]
    from tuner.tracking.rows import MAX_BATCH

    for start in range(0, len(metrics), MAX_BATCH):  # MLflow takes 1,000 metrics per batch
        client.log_batch(run_id, metrics=metrics[start : start + MAX_BATCH], tags=tags if start == 0 else [])
    client.log_text(run_id, json.dumps(entry, indent=2, default=str), "test_result.json")


def _log_classification(
    tracker: Any, run_id: str, cm: np.ndarray, dataset: Any, y_test: np.ndarray, proba: np.ndarray
) -> None:
    """A classification refit's confusion matrix, report and (binary) PR curve."""
    from sklearn.metrics import classification_report

    client = tracker.client
    names = _class_names(dataset)
    client.log_dict(run_id, {"labels": names, "matrix": cm.tolist()}, "confusion_matrix.json")
    report = classification_report(
        y_test,
        proba.argmax(axis=1),
        labels=np.arange(len(names)),
        target_names=names,
        output_dict=True,
        zero_division=0,
    )
    client.log_dict(run_id, report, "classification_report.json")
    try:
        from tuner.views.plots import confusion_matrix_figure

        fig = confusion_matrix_figure(cm, names)
        client.log_figure(run_id, fig, "confusion_matrix.png")
    except Exception as e:
        tracker.warn(f"could not draw the confusion matrix: {e}")
    if len(names) == 2:
        try:
            _log_pr_curve(client, run_id, y_test, proba[:, 1], names[1])
        except Exception as e:
            tracker.warn(f"could not draw the precision-recall curve: {e}")


def _end_run(tracker: Any, run_id: str) -> None:
    """Close the refit run; while MLflow is down, retried when the study ends."""

    def close() -> None:
        tracker.client.set_terminated(run_id, status="FINISHED")

    ok, _ = tracker.outage.call(close)
    if not ok:
        tracker.outage.defer("the refit run", close)


def _user() -> str:
    """Who scored the test split (recorded with when and where)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _log_pr_curve(client: Any, run_id: str, y: np.ndarray, p1: np.ndarray, positive: str) -> None:
    """Binary refits: the test split's precision-recall curve (PNG + JSON), by sklearn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import PrecisionRecallDisplay, average_precision_score, precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y, p1, pos_label=1)
    ap = float(average_precision_score(y, p1, pos_label=1))
    client.log_dict(
        run_id,
        {
            "positive_class": positive,
            "average_precision": ap,
            "precision": precision.tolist(),
            "recall": recall.tolist(),
            "thresholds": thresholds.tolist(),
        },
        "precision_recall_curve.json",
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    PrecisionRecallDisplay(precision=precision, recall=recall, average_precision=ap).plot(
        ax=ax, name=f"positive: {positive}", plot_chance_level=False
    )
    ax.axhline(float(np.mean(y == 1)), ls="--", color="grey", label="chance (prevalence)")
    ax.set_title("held-out test precision-recall")
    ax.legend(loc="lower left")
    client.log_figure(run_id, fig, "precision_recall_curve.png")
    plt.close(fig)
