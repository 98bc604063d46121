"""What a study found: a machine-readable summary and a readable table."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["compute_text", "render", "summarize"]


def summarize(config: StudyConfig, study: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The study as plain data: counts, best trial, test result (or None)."""
    from tuner.storage.records import scorings, stopped
    from tuner.views.findings import diagnoses, importances

    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    finished = counts.get("complete", 0) + counts.get("pruned", 0)
    best = None
    try:
        b = study.best_trial
        best = {
            "number": b.number,
            "params": dict(b.params),
            "cv_mean": b.user_attrs.get("cv_mean", b.value),
            "cv_std": b.user_attrs.get("cv_std"),
            "fold_scores": b.user_attrs.get("fold_scores"),
            "mlflow_run_id": b.user_attrs.get("mlflow_run_id"),
        }
    except ValueError:
        pass
    history = scorings(study)
    test = _test_summary(history, best, config.direction)
    summary = {
        "study": config.name,
        "metric": config.objective.metric,
        "direction": config.direction,
        "budget": config.budget.n_trials,
        "counts": {k: counts.get(k, 0) for k in ("complete", "pruned", "fail", "running", "waiting")},
        "finished": finished,
        "best": best,
        "test": test,
        "stopped": stopped(study, finished) if finished < config.budget.n_trials else None,
        "mlflow": {
            "experiment_id": study.user_attrs.get("tuner_mlflow_experiment_id"),
            "parent_run_id": study.user_attrs.get("tuner_mlflow_parent_run_id"),
            "study_plots": list(study.user_attrs.get("tuner_study_plots", [])),
            "ui_url": _ui_url(config, study.user_attrs.get("tuner_mlflow_experiment_id")),
        },
        "refit": _refit(history),
    }
    from tuner.storage.records import PREFLIGHT_ATTR

    summary["preflight_warnings"] = list(study.user_attrs.get(PREFLIGHT_ATTR, []))
    summary["compute"] = _compute(config, trials)
    summary["diagnoses"] = diagnoses(study)
    summary["importances"] = importances(study)
    if extra and extra.get("test", {}).get("reused"):
        summary["test_reused"] = True
    return summary


def _ui_url(config: StudyConfig, experiment_id: str | None) -> str | None:
    """The study's run table in the MLflow UI: on its tracking server, or None for a local
    store (no server runs: `tune ui` serves it and prints this URL)."""
    from tuner.secrets import mask_secrets
    from tuner.views.ui import run_table_url

    uri = config.tracking_uri
    if not config.mlflow.enabled or not experiment_id or not uri.startswith(("http://", "https://")):
        return None
    return run_table_url(mask_secrets(uri), experiment_id, view=True)


def _refit(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest refit, the model to take away: its MLflow run, its model, its registry
    version, and the line that loads it for further training. (The test score to publish
    is the first look's, under ``test``.)"""
    if not history:
        return None
    last = history[-1]
    run_id = last.get("mlflow_run_id")
    return {
        "trial_number": last["trial_number"],
        "run_id": run_id,
        "model_uri": last.get("model_uri"),
        "model_artifacts": last.get("model_artifacts"),
        "registered": last.get("registered"),
        "load": f'tuner.load_refit("runs:/{run_id}")' if run_id and last.get("model_artifacts") else None,
    }


def _compute(config: StudyConfig, trials: list[Any]) -> dict[str, Any]:
    """What the search trained against what it would have without pruning or early
    stopping (every finished trial's folds to max_epochs)."""
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    folds = [f for t in done for f in t.user_attrs.get("fold_epochs") or []]
    return {
        "epochs_trained": sum(int(t.user_attrs.get("epochs_trained", 0)) for t in done),
        "epochs_full": len(done) * config.data.folds * config.training.max_epochs,
        "folds_trained": len(folds),
        "folds_stopped_early": sum(bool(f.get("stopped")) for f in folds),
        "trials_pruned": sum(t.state.name == "PRUNED" for t in done),
    }


def compute_text(summary: dict[str, Any]) -> str:
    """What the search trained, against a search without pruning or early stopping."""
    comp = summary.get("compute") or {}
    if not comp.get("epochs_full"):
        return ""
    return (
        f"{comp['epochs_trained']:,} of the {comp['epochs_full']:,} a search without pruning or "
        f"early stopping would train ({comp['epochs_trained'] / comp['epochs_full']:.0%}); early "
        f"stopping ended {comp['folds_stopped_early']} of {comp['folds_trained']} folds, pruning "
        f"stopped {comp['trials_pruned']} trial(s)"
    )


def _test_summary(
    history: list[dict[str, Any]], best: dict[str, Any] | None, direction: str
) -> dict[str, Any] | None:
    """The lockbox as the report shows it: the FIRST look is the unbiased estimate (any
    later look chose its model after the test split had been seen once); each look is
    listed with its selection."""
    from tuner.views.findings import optimism

    if not history:
        return None
    first = history[0]
    test: dict[str, Any] = {
        "score": first["score"],
        "metrics": first["metrics"],
        "trial_number": first["trial_number"],
        "refit_trial_number": first["trial_number"],
        "scored_at": first["scored_at"],
        "times_scored": len(history),
        "n_test": first.get("n_test"),
        "current_best": best is not None and best["number"] == first["trial_number"],
        "search_cut_short": bool(first.get("search_cut_short")),
        "trials_finished": first.get("trials_finished"),
        "budget": first.get("budget"),
        "refit_run_id": first.get("mlflow_run_id"),
    }
    if first.get("per_class_recall") is not None:  # scorings recorded before it have none
        test["per_class_recall"] = first["per_class_recall"]
        test["n_classes"] = first.get("n_classes", len(first["per_class_recall"]))
        test["mistakes"] = first.get("mistakes")
    if first.get("largest_errors") is not None:  # regression
        test["largest_errors"] = first["largest_errors"]
        test["target_sd"] = first.get("target_sd")
    if first.get("refit_epochs") is not None:
        test["refit_epochs"] = first["refit_epochs"]
        test["refit_epochs_rule"] = first.get("refit_epochs_rule")
    if first.get("cv_mean") is not None:
        test["cv_mean"] = first["cv_mean"]
        test["cv_std"] = first.get("cv_std")
        opt = optimism(test, direction)  # positive: CV was optimistic
        if opt is not None:
            test["validation_optimism"] = opt["value"]
            test["optimism_note"] = opt["note"]
    test["selections_scored"] = len({e["trial_number"] for e in history})
    test["scored_by"] = f"{first.get('user', '?')}@{first.get('host', '?')}"
    test["looks"] = [
        {
            "look": i,
            "trial_number": e["trial_number"],
            "score": e["score"],
            "cv_mean": e.get("cv_mean"),
            "scored_at": e["scored_at"],
            "search_cut_short": bool(e.get("search_cut_short")),
            "trials_finished": e.get("trials_finished"),
            "budget": e.get("budget"),
        }
        for i, e in enumerate(history, 1)
    ]
    return test


def render(summary: dict[str, Any]) -> str:
    """A readable, plain-text version of ``summarize``'s output."""
    from tuner.views.findings import trials_of_budget

    m = summary["metric"]
    c = summary["counts"]
    lines = [
        f"study {summary['study']}  ({m}, {summary['direction']})",
        f"trials: {trials_of_budget(summary['finished'], summary['budget'])} — complete {c['complete']}, "
        f"pruned {c['pruned']}, failed {c['fail']}, running {c['running']}",
    ]
    if compute_text(summary):
        lines.append(f"epochs trained: {compute_text(summary)}")
    lines += [f"pre-flight warning: {w}" for w in summary.get("preflight_warnings", [])]
    best = summary["best"]
    if best is None:
        lines.append("best: none yet (no trial completed)")
    else:
        std = best["cv_std"]
        cv = f"{best['cv_mean']:.4f}" + (f" ± {std:.4f}" if std is not None else "")
        lines.append(f"best trial #{best['number']}: cross-validated {m} {cv} (mean ± std over folds)")
        width = max((len(k) for k in best["params"]), default=0)
        for k, v in best["params"].items():
            shown = f"{v:.4g}" if isinstance(v, float) else str(v)
            lines.append(f"    {k:<{width}}  {shown}")
    lines += _render_test(summary)
    lines += _render_refit(summary)
    from tuner.views.findings import render_findings

    lines.extend(render_findings(summary))
    return "\n".join(lines)


def _render_refit(summary: dict[str, Any]) -> list[str]:
    """Where the refit model is, and whether it was registered."""
    refit = summary.get("refit") or {}
    lines = []
    if refit.get("model_uri"):
        lines.append(f"refit model: {refit['model_uri']} (MLflow run {refit['run_id']})")
        lines.append(f"    train it further: model = {refit['load']}; model.fine_tune(X, y, epochs=5)")
    reg = refit.get("registered")
    if reg and reg.get("skipped"):
        lines.append(f"not registered as {reg['name']}: {reg['skipped']}")
    elif reg:
        lines.append(f"registered: models:/{reg['name']}@{reg['alias']} (version {reg['version']})")
    if (summary.get("mlflow") or {}).get("ui_url"):
        lines.append(f"MLflow UI: {summary['mlflow']['ui_url']}")
    return lines


def _render_test(summary: dict[str, Any]) -> list[str]:
    """The lockbox's lines: the first look (the unbiased estimate), then any later look."""
    m, test, stop = summary["metric"], summary["test"], summary.get("stopped")
    lines = []
    if stop:
        lines.append(
            f"search stopped by {stop['reason']} at {stop['at']}, after {stop['finished']}/"
            f"{stop['budget']} trials: run the same command to continue"
        )
    if test is None:
        sealed = "sealed until the budget is reached" if stop else "not scored yet"
        lines.append(f"held-out test: {sealed} (it is scored once, after the search)")
        return lines
    lines.append(
        f"held-out test ({test.get('n_test')} samples, refit of trial #{test['trial_number']}): "
        f"{m} {test['score']:.4f}"
    )
    lines += _render_errors(test)
    if test.get("refit_epochs") is not None:
        lines.append(f"refit trained {test['refit_epochs']} epoch(s): {test.get('refit_epochs_rule')}")
    if "validation_optimism" in test:
        gap, std = test["validation_optimism"], test.get("cv_std")
        of_std = f" ({gap / std:+.1f}x the fold std)" if std else ""
        lines.append(f"validation optimism (+ = cross-validation was optimistic): {gap:+.4f}{of_std}")
        if test.get("optimism_note"):
            lines.append(f"note: {test['optimism_note']}")
    if test.get("search_cut_short"):
        lines.append(
            f"note: scored by `tune finish` after {test.get('trials_finished')}/{test.get('budget')} "
            "trials: the search was cut short of its budget"
        )
    lines.append(
        f"test split scored {test['times_scored']} time(s), for "
        f"{test.get('selections_scored', test['times_scored'])} selection(s); first at "
        f"{test['scored_at']} by {test.get('scored_by', '?')}"
    )
    if test["times_scored"] > 1:
        lines.append("the first look (above) is the unbiased estimate: publish that one. Every look:")
        for look in test.get("looks", []):
            when = (
                f"after {look['trials_finished']}/{look['budget']} trials, "
                if look.get("trials_finished")
                else ""
            )
            cut = ", search cut short" if look.get("search_cut_short") else ""
            lines.append(
                f"    look {look['look']}: trial #{look['trial_number']} {m} {look['score']:.4f} "
                f"({when}{look['scored_at']}{cut})"
            )
        lines.append(
            f"WARNING: the test split has been scored {test['times_scored']} times; only the "
            "first look is an unbiased estimate"
        )
    if not test["current_best"]:
        lines.append("note: the best trial changed since the test split was first scored")
    return lines


ERRORS_SHOWN = 3  # a regression's largest test errors in the report (all 10 in the record)


def _render_regression(test: dict[str, Any]) -> list[str]:
    """Every test metric (R² read against predicting the test mean) and the largest errors."""
    metrics = test.get("metrics") or {}
    shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
    lines = [f"test metrics: {shown} (r2: 0 = predicting the mean, 1 = perfect)"]
    if test.get("target_sd"):
        lines[0] += f"; the test target's sd is {test['target_sd']:.4g}"
    where = (
        " (every prediction in test_predictions.csv on the refit's MLflow run)"
        if test.get("refit_run_id")
        else ""
    )
    lines.append(f"largest errors{where}:")
    for e in test["largest_errors"][:ERRORS_SHOWN]:
        lines.append(
            f"    row {e['row']}: actual {e['actual']:.4g}, predicted {e['predicted']:.4g} (error {e['error']:+.4g})"
        )
    return lines


def _render_errors(test: dict[str, Any]) -> list[str]:
    """Per-class recall on the test split and its most confident mistakes (by dataset row);
    for regression every test metric and the largest errors."""
    if test.get("largest_errors") is not None:
        return _render_regression(test)
    if not test.get("per_class_recall"):
        return []
    lines = [_recall_line(test["per_class_recall"], test.get("n_classes"))]
    mistakes = test.get("mistakes") or {}
    if mistakes.get("count") == 0:
        lines.append(f"no mistakes: all {test.get('n_test')} test samples were classified right")
    elif mistakes.get("most_confident"):
        where = " (more in errors/ on the refit's MLflow run)" if test.get("refit_run_id") else ""
        n = mistakes["count"]
        lines.append(f"the only mistake{where}:" if n == 1 else f"most confident of the {n} mistakes{where}:")
        for m in mistakes["most_confident"]:
            p = f" (p={m['confidence']:.2f})" if m.get("confidence") is not None else ""
            lines.append(f"    row {m['row']}: true {m['true']}, predicted {m['predicted']}{p}")
    return lines


ALL_CLASSES_UP_TO = 20  # beyond, the report names the lowest recalls only
LOWEST_SHOWN = 5


def _recall_line(recall: dict[str, dict[str, Any]], n_classes: int | None) -> str:
    """Every class's recall and the lowest (up to 20 classes), or the lowest 5."""
    known = {k: r["recall"] for k, r in recall.items() if r.get("recall") is not None}
    lowest = sorted(known, key=lambda k: known[k])  # stable: the first class of a tie
    n = n_classes or len(recall)
    if n > ALL_CLASSES_UP_TO:
        shown = ", ".join(
            f"{k} {known[k]:.2f} ({recall[k]['support']} samples)" for k in lowest[:LOWEST_SHOWN]
        )
        return f"per-class recall, the lowest {min(LOWEST_SHOWN, len(lowest))} of {n} classes: {shown}"
    shown = ", ".join(
        f"{k} {'n/a' if r.get('recall') is None else format(r['recall'], '.2f')}" for k, r in recall.items()
    )
    if not lowest:
        return f"per-class recall: {shown}"
    k = lowest[0]
    return f"per-class recall: {shown} (lowest: {k} {known[k]:.2f} on {recall[k]['support']} samples)"
