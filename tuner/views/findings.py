"""Study-level findings for ``tune report``: diagnosis counts and remedies backed by the
study's own results, Optuna's parameter importances, and the validation optimism.

Everything here reads the study; nothing writes to it.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from tuner.views.diagnose import CHANCE_SKILL, DIAGNOSES, MIN_TRIALS_ALL_CHANCE, TRAIN_FITS
from tuner.views.remedies import remedy
from tuner.views.skill import REGRESSION_METRICS, baseline_words

__all__ = [
    "MIN_TRIALS_IMPORTANCE",
    "OPTIMISM_STD_FACTOR",
    "cv_value",
    "diagnoses",
    "importances",
    "optimism",
    "param_support",
    "render_findings",
    "trials_of_budget",
]

MIN_TRIALS_IMPORTANCE = 5  # completed trials before importances mean anything
OPTIMISM_STD_FACTOR = 2.0  # validation optimism above this many fold stds gets a note
TOP_K = 10  # "the 10 best trials all use ..."
MIN_TRIALS_SUPPORT = 6  # completed trials before the best ones are compared with the rest
SUPPORT_SHARE = 0.6  # a finding needs the best trials' range to hold at most this share of all

# the parameters whose settings speak to each diagnosis's remedy
_RELEVANT = {
    "overfitting": ("dropout", "weight_decay", "l1", "label_smoothing", "width", "depth"),
    "underfitting": ("dropout", "weight_decay", "l1", "width", "depth", "lr"),
    "diverged": ("lr", "batchnorm", "max_norm", "optimizer", "momentum", "loss"),
    "vanishing_gradients": ("depth", "activation", "batchnorm", "optimizer", "lr"),
}


def trials_of_budget(finished: int, budget: int) -> str:
    """``6/30 finished``, or, when an earlier run went past this budget (say with
    ``--n-trials``), ``6 finished (budget.n_trials here: 2)`` rather than a puzzling ``6/2``."""
    if finished <= budget:
        return f"{finished}/{budget} finished"
    return f"{finished} finished (budget.n_trials here: {budget})"


def _done(study: Any) -> list[Any]:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]


def param_support(study: Any) -> list[dict[str, Any]]:
    """What the best trials share that the rest do not, e.g. "the 10 best trials all
    use dropout ≥ 0.3 (12 of 40 trials do)". Empty for studies too small to say."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < MIN_TRIALS_SUPPORT:
        return []
    reverse = study.direction.name == "MAXIMIZE"
    ranked = sorted(complete, key=lambda t: t.value, reverse=reverse)
    k = min(TOP_K, len(ranked) // 2)
    top = ranked[:k]
    out: list[dict[str, Any]] = []
    for name in sorted(set.intersection(*(set(t.params) for t in top))):
        values = [t.params[name] for t in complete if name in t.params]
        best = [t.params[name] for t in top]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        claims: list[tuple[str, int]] = []
        if numeric:
            lo, hi = min(best), max(best)
            if lo > min(values):
                claims.append((f"{name} ≥ {lo:.3g}", sum(v >= lo for v in values)))
            if hi < max(values):
                claims.append((f"{name} ≤ {hi:.3g}", sum(v <= hi for v in values)))
        elif len(set(map(str, best))) == 1:
            claims.append((f"{name} = {best[0]}", sum(str(v) == str(best[0]) for v in values)))
        for claim, n in claims:
            if n / len(values) <= SUPPORT_SHARE:
                out.append(
                    {
                        "param": name,
                        "text": f"the {k} best trials all use {claim} ({n} of {len(values)} trials do)",
                    }
                )
    return out


def _all_at_chance(rows: list[dict[str, Any]], metric: str | None) -> list[str]:
    """The study-wide rule: every trial (at least ``MIN_TRIALS_ALL_CHANCE``) at chance on
    validation. Trials that still fit their training rows make the study a data-pipeline
    suspect (relabelled here); if none learns even its training rows, that is
    under-fitting everywhere, and the note says how to tell it from shuffled labels."""
    skills = [r["evidence"].get("val_skill") for r in rows]
    if len(rows) < MIN_TRIALS_ALL_CHANCE or not all(s is not None and s < CHANCE_SKILL for s in skills):
        return []
    regression = metric in REGRESSION_METRICS
    at = f"no better than {baseline_words(metric)}" if regression else "at chance"
    labels = "targets" if regression else "labels"
    fitting = [r for r in rows if (r["evidence"].get("train_skill") or 0.0) >= TRAIN_FITS]
    if not fitting:
        return [
            f"every one of the {len(rows)} trials scores {at} on validation AND on training: "
            "the models learn nothing (under-fitting; try a bigger model, more epochs, less "
            f"regularization). If a model that fits its training rows still scores {at} on "
            f"validation, suspect the {labels}."
        ]
    for r in fitting:
        r["diagnosis"] = "data_pipeline_suspect"
    return [
        f"every one of the {len(rows)} trials scores {at} on validation, while {len(fitting)} "
        f"fit their training rows: suspect the data pipeline ({labels} aligned with features?), not "
        f"the models. {remedy('data_pipeline_suspect', metric)}"
    ]


def diagnoses(study: Any) -> dict[str, Any]:
    """Per-trial diagnoses, study-level counts and remedies (see ``tuner.views.diagnose``).

    A study whose every trial sits at chance on validation is judged as a whole
    (``_all_at_chance``).
    """
    trials = [t for t in _done(study) if t.user_attrs.get("diagnosis")]
    rows = [
        {
            "number": t.number,
            "state": t.state.name.lower(),
            **cv_value(t),
            "diagnosis": t.user_attrs["diagnosis"],
            "text": t.user_attrs.get("diagnosis_text", ""),
            "evidence": t.user_attrs.get("diagnosis_evidence", {}),
        }
        for t in trials
    ]
    # the metric each diagnosis was read in (all trials of a study share it)
    metric = next((r["evidence"]["metric"] for r in rows if r["evidence"].get("metric")), None)
    notes = _all_at_chance(rows, metric)
    counts = Counter(r["diagnosis"] for r in rows)
    support = param_support(study)
    remedies = {}
    for name in DIAGNOSES[1:]:
        if counts.get(name) and remedy(name, metric):
            relevant = _RELEVANT.get(name, ())
            remedies[name] = {
                "remedy": remedy(name, metric),
                "supported_by": [s["text"] for s in support if s["param"] in relevant],
            }
    return {
        "counts": {name: counts.get(name, 0) for name in DIAGNOSES},
        "trials": rows,
        "notes": notes,
        "remedies": remedies,
        "best_trials_share": [s["text"] for s in support],
    }


def cv_value(trial: Any) -> dict[str, Any]:
    """``{"value", "folds"}``: a trial's score for the table: its CV mean over the folds it finished (a pruned
    trial's Optuna value is its last reported epoch, not a CV score), and how many."""
    import statistics

    scores = [float(v) for v in trial.user_attrs.get("fold_scores") or [] if v is not None]
    value = trial.user_attrs.get("cv_mean")
    if value is None:
        value = statistics.fmean(scores) if scores else None
    return {"value": value, "folds": len(scores)}


def importances(study: Any) -> dict[str, Any]:
    """Optuna's ``get_param_importances`` ({param: share}), or why it was skipped."""
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < MIN_TRIALS_IMPORTANCE:
        return {
            "skipped": f"{len(complete)} completed trials; importances need {MIN_TRIALS_IMPORTANCE} or more"
        }
    varied = [
        n
        for n in set().union(*(t.params for t in complete))
        if len({repr(t.params.get(n)) for t in complete}) > 1
    ]
    if not varied:
        return {"skipped": "no parameter varied across the completed trials"}
    try:
        values = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as e:
        return {"skipped": f"Optuna could not compute importances: {e}"}
    return {"values": {k: round(float(v), 4) for k, v in values.items()}}


def optimism(test: dict[str, Any], direction: str) -> dict[str, Any] | None:
    """The best trial's CV score minus its test score (signed so that positive means the
    cross-validation was optimistic), and a note when it is large against the fold std."""
    cv, score, std = test.get("cv_mean"), test.get("score"), test.get("cv_std")
    if cv is None or score is None:
        return None
    gap = (cv - score) if direction == "maximize" else (score - cv)
    out: dict[str, Any] = {"value": gap, "cv_std": std, "note": None}
    if std is not None and math.isfinite(std) and gap > OPTIMISM_STD_FACTOR * max(std, 1e-12):
        ratio = gap / std if std > 0 else math.inf
        out["note"] = (
            f"the cross-validated score is optimistic by {gap:.4f}, {ratio:.1f}x the fold std "
            f"(note above {OPTIMISM_STD_FACTOR:g}x): the search partly fitted the validation folds "
            "(more trials, more selection bias) or the test split differs; trust the test score"
        )
    return out


def render_findings(summary: dict[str, Any]) -> list[str]:
    """The diagnoses table, remedies and importances of a ``summarize`` output, as lines."""
    lines: list[str] = []
    diag = summary.get("diagnoses")
    if diag and diag["trials"]:
        counts = ", ".join(f"{k} {v}" for k, v in diag["counts"].items() if v)
        lines += [
            "",
            f"diagnoses: {counts}",
            "  trial  state     CV mean (folds)  diagnosis              evidence",
        ]
        for r in diag["trials"]:
            ev = r["evidence"]
            value = f"{r['value']:.4f} ({r.get('folds', '?')})" if r["value"] is not None else "- (0)"
            why = ev.get("rule", "")
            why = why if len(why) <= 100 else why[:97] + "..."
            label = r["diagnosis"] + (f" ({ev['severity']})" if ev.get("severity") else "")
            lines.append(f"  {r['number']:>5}  {r['state']:<8}  {value:<15}  {label:<21}  {why}")
        lines.append(
            "  CV mean: over the folds the trial finished (a pruned trial's, over its first folds; "
            "'- (0)': stopped inside its first fold)"
        )
        lines += [f"  note: {n}" for n in diag["notes"]]
        for name, rem in diag["remedies"].items():
            lines.append(f"  {name}: try {rem['remedy']}")
            lines += [f"    this study: {s}" for s in rem["supported_by"]]
        other = [
            s
            for s in diag["best_trials_share"]
            if not any(s in r["supported_by"] for r in diag["remedies"].values())
        ]
        lines += [f"  the best trials: {s}" for s in other]
    imp = summary.get("importances")
    if imp:
        if "values" in imp:
            lines += ["", "parameter importances (Optuna get_param_importances):"]
            width = max((len(k) for k in imp["values"]), default=0)
            lines += [f"    {k:<{width}}  {v:.3f}" for k, v in imp["values"].items()]
        else:
            lines += ["", f"parameter importances: skipped ({imp['skipped']})"]
    plots = (summary.get("mlflow") or {}).get("study_plots")
    if plots:
        run = summary["mlflow"].get("parent_run_id")
        lines += ["", f"study plots (artifacts of MLflow run {run}):"]
        lines += [f"    {p}" for p in plots]
    return lines
