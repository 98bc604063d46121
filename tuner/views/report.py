"""What a study found: a machine-readable summary and a readable table."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["render", "summarize"]


def summarize(config: StudyConfig, study: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The study as plain data: counts, best trial, test result (or None)."""
    from tuner.storage.records import scorings
    from tuner.views.findings import diagnoses, importances, optimism

    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    best = None
    try:
        b = study.best_trial
        best = {
            "number": b.number,
            "params": dict(b.params),
            "cv_mean": b.user_attrs.get("cv_mean", b.value),
            "cv_std": b.user_attrs.get("cv_std"),
            "fold_scores": b.user_attrs.get("fold_scores"),
        }
    except ValueError:
        pass
    history = scorings(study)
    test = None
    if history:
        last = history[-1]
        test = {
            "score": last["score"],
            "metrics": last["metrics"],
            "trial_number": last["trial_number"],
            "refit_trial_number": last["trial_number"],
            "scored_at": last["scored_at"],
            "times_scored": len(history),
            "n_test": last.get("n_test"),
            "current_best": best is not None and best["number"] == last["trial_number"],
        }
        if last.get("cv_mean") is not None:
            test["cv_mean"] = last["cv_mean"]
            test["cv_std"] = last.get("cv_std")
            opt = optimism(test, config.direction)  # positive: CV was optimistic
            if opt is not None:
                test["validation_optimism"] = opt["value"]
                test["optimism_note"] = opt["note"]
        test["selections_scored"] = len({e["trial_number"] for e in history})
        test["scored_by"] = f"{last.get('user', '?')}@{last.get('host', '?')}"
    summary = {
        "study": config.name,
        "metric": config.objective.metric,
        "direction": config.direction,
        "budget": config.budget.n_trials,
        "counts": {k: counts.get(k, 0) for k in ("complete", "pruned", "fail", "running", "waiting")},
        "finished": counts.get("complete", 0) + counts.get("pruned", 0),
        "best": best,
        "test": test,
        "mlflow": {
            "experiment_id": study.user_attrs.get("tuner_mlflow_experiment_id"),
            "parent_run_id": study.user_attrs.get("tuner_mlflow_parent_run_id"),
            "study_plots": list(study.user_attrs.get("tuner_study_plots", [])),
        },
    }
    summary["diagnoses"] = diagnoses(study)
    summary["importances"] = importances(study)
    if extra and extra.get("test", {}).get("reused"):
        summary["test_reused"] = True
    return summary


def render(summary: dict[str, Any]) -> str:
    """A readable, plain-text version of ``summarize``'s output."""
    m = summary["metric"]
    c = summary["counts"]
    lines = [
        f"study {summary['study']}  ({m}, {summary['direction']})",
        f"trials: {summary['finished']}/{summary['budget']} finished — complete {c['complete']}, "
        f"pruned {c['pruned']}, failed {c['fail']}, running {c['running']}",
    ]
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
    test = summary["test"]
    if test is None:
        lines.append("held-out test: not scored yet (runs once, after the search)")
    else:
        lines.append(
            f"held-out test ({test.get('n_test')} samples, refit of trial #{test['trial_number']}): "
            f"{m} {test['score']:.4f}"
        )
        if "validation_optimism" in test:
            gap = test["validation_optimism"]
            std = test.get("cv_std")
            of_std = f" ({gap / std:+.1f}x the fold std)" if std else ""
            lines.append(f"gap (cross-validated − test): {test['cv_mean'] - test['score']:+.4f}")
            lines.append(f"validation optimism (+ = cross-validation was optimistic): {gap:+.4f}{of_std}")
            if test.get("optimism_note"):
                lines.append(f"note: {test['optimism_note']}")
        lines.append(
            f"test split scored {test['times_scored']} time(s), for "
            f"{test.get('selections_scored', test['times_scored'])} selection(s); last at "
            f"{test['scored_at']} by {test.get('scored_by', '?')}"
        )
        if test["times_scored"] > 1:
            lines.append(
                f"WARNING: the test split has been scored {test['times_scored']} times; only the "
                "first look is an unbiased estimate"
            )
        if not test["current_best"]:
            lines.append("note: the best trial changed since the test split was scored")
    from tuner.views.findings import render_findings

    lines.extend(render_findings(summary))
    return "\n".join(lines)
