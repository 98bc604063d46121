"""One diagnosis per trial, from its curves: healthy | overfitting | underfitting |
diverged | data_pipeline_suspect, with the evidence numbers and the remedy.

Scores are compared as *skill*: 0 at chance, 1 at a perfect score
(``(score - chance) / (perfect - chance)``; for log loss ``1 - loss / chance_loss``),
so one set of thresholds serves every metric and class count. Chance is what a
naive predictor scores given the class frequencies (``chance_level``).

The rules, in order (the first that matches wins; thresholds are the constants below):

1. ``data_pipeline_suspect``: the loss or gradient was non-finite at the very first
   step (before any update, so it is the data, not the learning rate), or a loss is
   negative (cross-entropy cannot be: the labels or the loss are wired wrong).
2. ``diverged``: stopped by the divergence guard, or the gradient norm grew
   ``GRAD_EXPLODE_FACTOR`` x from the first epoch, or the training loss ended
   ``LOSS_EXPLODE_FACTOR`` x above the first epoch's.
3. ``data_pipeline_suspect``: validation skill above training skill by more than
   ``VAL_ABOVE_TRAIN`` in every epoch; or validation at chance (skill below
   ``CHANCE_SKILL``) in this trial and every other finished trial of the study (at
   least ``MIN_TRIALS_ALL_CHANCE`` trials).
4. ``overfitting``: train skill above validation skill by ``OVERFIT_GAP`` or more at
   the end, and the gap grew by ``OVERFIT_GAP_GROWTH`` since the first epoch or the
   validation loss rose ``VAL_LOSS_RISE`` above its minimum while the training loss fell.
5. ``underfitting``: train skill below ``UNDERFIT_SKILL`` (close to chance), or more
   than ``UNDERFIT_BEHIND_BEST`` below the study's best validation skill.
6. ``healthy``.

Whatever the verdict, the folds that early stopping ended with their validation loss
``ES_RISE`` above its best while the training loss kept falling are named in the
evidence (``early_stopping``) and the text: over-fitting that early stopping caught.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from tuner.views.curves import CurveRecorder, Curves

__all__ = [
    "DIAGNOSES",
    "REMEDIES",
    "CurveRecorder",
    "Curves",
    "chance_level",
    "diagnose",
    "record_diagnosis",
    "skill",
]

DIAGNOSES = ("healthy", "overfitting", "underfitting", "diverged", "data_pipeline_suspect")

OVERFIT_GAP = 0.15  # train − validation skill at the end
OVERFIT_GAP_GROWTH = 0.05  # ... that grew at least this much since the first epoch
VAL_LOSS_RISE = 0.10  # or validation loss this fraction above its minimum, train loss falling
UNDERFIT_SKILL = 0.30  # final train skill below this is close to chance
UNDERFIT_BEHIND_BEST = 0.30  # or train skill this far below the study's best validation skill
GRAD_EXPLODE_FACTOR = 100.0  # last epoch's max grad norm / first epoch's
LOSS_EXPLODE_FACTOR = 3.0  # last epoch's train loss / first epoch's
VAL_ABOVE_TRAIN = 0.15  # validation skill above train skill in every epoch
CHANCE_SKILL = 0.05  # validation skill below this is at chance
ES_RISE = 0.02  # a fold early stopping ended with its validation loss this far above its best
MIN_TRIALS_ALL_CHANCE = 3  # trials at chance before the study as a whole is suspect

REMEDIES = {
    "healthy": "",
    "overfitting": "more data or augmentation, more dropout, more weight decay, fewer epochs "
    "or a smaller model",
    "underfitting": "less regularization (dropout, weight decay), a bigger model, more epochs "
    "or a higher learning rate",
    "diverged": "input normalization (data.normalize), batch norm, a lower learning rate or "
    "gradient clipping (max_norm)",
    "data_pipeline_suspect": "inspect the data pipeline: labels aligned with features, the "
    "label encoding, duplicated or leaked rows, the scale of the inputs",
}

# the guard's message for a non-finite value at a fold's first optimizer step
_FIRST_STEP = re.compile(r"is -?(nan|inf)\b.*epoch 0, step 0\)")


def chance_level(metric: str, counts: Any) -> float:
    """What a naive predictor scores, given the class counts of the training data.

    accuracy: always the majority class; balanced accuracy: 1/C; ROC AUC: 0.5;
    macro F1: guessing classes at random; log loss: predicting the class frequencies.
    """
    p = np.asarray(counts, dtype=np.float64)
    p = p / p.sum()
    c = len(p)
    if metric == "accuracy":
        return float(p.max())
    if metric == "balanced_accuracy":
        return 1.0 / c
    if metric == "roc_auc":
        return 0.5
    if metric == "f1_macro":
        return float(np.mean(2 * p * (1 / c) / (p + 1 / c)))
    if metric == "log_loss":
        q = p[p > 0]
        return float(-(q * np.log(q)).sum())
    raise ValueError(f"unknown metric {metric!r}")


def skill(value: float, metric: str, chance: float) -> float:
    """``value`` on a scale where chance is 0 and a perfect score is 1."""
    if metric == "log_loss":
        return 1.0 - value / chance if chance > 0 else 0.0
    return (value - chance) / (1.0 - chance) if chance < 1 else 0.0


def _r(x: float) -> float | None:
    return round(float(x), 4) if x is not None and math.isfinite(x) else None


def diagnose(
    curves: Curves,
    metric: str,
    chance: float,
    *,
    pruned_by: str | None = None,
    pruned_reason: str | None = None,
    best_val_skill: float | None = None,
    other_val_skills: list[float] | None = None,
    fold_epochs: list[dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any], str]:
    """Diagnose one trial: ``(diagnosis, evidence, text)``; see the module docstring.

    Args:
        curves: the trial's per-epoch curves (may be empty for a trial stopped early).
        metric: the study's metric; ``chance`` its chance level (``chance_level``).
        pruned_by, pruned_reason: the trial's pruning attrs, if it was stopped.
        best_val_skill: the study's best validation skill so far (another trial's).
        other_val_skills: the final validation skills of the study's other trials.
        fold_epochs: what early stopping saw of each fold (the trial's ``fold_epochs``).
    """
    ts = [skill(v, metric, chance) for v in curves.train_score]
    vs = [skill(v, metric, chance) for v in curves.val_score]
    ev = _evidence(curves, ts, vs, metric, chance, pruned_by)
    name, why = (
        _broken(curves, pruned_by, pruned_reason)
        or (None if curves.epochs else ("healthy", "no complete epoch to judge"))
        or _leaked_or_shuffled(curves, ts, vs, metric, chance, other_val_skills)
        or _fit(curves, ts, vs, metric, chance, best_val_skill)
    )
    ev["rule"] = why
    caught = _early_stopping(fold_epochs or [], ev)
    if caught and name != "data_pipeline_suspect":
        why += f"; {caught}"
    return name, ev, f"{name}: {why}" + (f". Try: {REMEDIES[name]}" if REMEDIES[name] else "")


def _early_stopping(folds: list[dict[str, Any]], ev: dict[str, Any]) -> str:
    """Record what early stopping saw in ``ev``; a sentence when it caught over-fitting:
    a fold it ended with the validation loss risen from its best while training loss fell."""
    stopped = [i for i, f in enumerate(folds) if f.get("stopped")]
    if not folds:
        return ""
    rising = []
    for i in stopped:
        f = folds[i]
        losses = [f.get(k) for k in ("val_loss_best", "val_loss_last", "train_loss_best", "train_loss_last")]
        if any(v is None for v in losses):
            continue
        vb, vl, tb, tl = (float(v) for v in losses)  # type: ignore[arg-type]
        if vl > vb * (1 + ES_RISE) and tl < tb:
            rising.append((i, f))
    ev["early_stopping"] = {
        "folds_stopped": stopped,
        "best_epochs": [f.get("best_epoch") for f in folds],
        "overfitting_caught": [i for i, _ in rising],
    }
    if not rising:
        return ""
    i, f = rising[0]
    rise = f["val_loss_last"] / f["val_loss_best"] - 1
    more = f" (and {len(rising) - 1} more)" if len(rising) > 1 else ""
    return (
        f"early stopping caught over-fitting in {len(rising)}/{len(folds)} fold(s): fold {i}'s "
        f"validation loss rose {f['val_loss_best']:.3g} → {f['val_loss_last']:.3g} (+{rise:.0%}) after "
        f"its best epoch {f['best_epoch'] + 1} while its training loss fell {f['train_loss_best']:.3g} → "
        f"{f['train_loss_last']:.3g}{more}"
    )


_Verdict = tuple[str, str]  # (diagnosis, why)


def _evidence(
    curves: Curves, ts: list[float], vs: list[float], metric: str, chance: float, pruned_by: str | None
) -> dict[str, Any]:
    """The numbers a diagnosis is read from, recorded with it."""
    ev: dict[str, Any] = {"metric": metric, "chance": _r(chance), "epochs": curves.epochs}
    if curves.epochs:
        gap = [t - v for t, v in zip(ts, vs, strict=True)]
        ev.update(
            train_score=_r(curves.train_score[-1]),
            val_score=_r(curves.val_score[-1]),
            train_skill=_r(ts[-1]),
            val_skill=_r(vs[-1]),
            gap=_r(gap[-1]),
            gap_first=_r(gap[0]),
            train_loss_first=_r(curves.train_loss[0]),
            train_loss_last=_r(curves.train_loss[-1]),
            val_loss_min=_r(min(curves.val_loss)),
            val_loss_last=_r(curves.val_loss[-1]),
            grad_max_first=_r(curves.grad_max[0]),
            grad_max_last=_r(curves.grad_max[-1]),
        )
    if pruned_by:
        ev["pruned_by"] = pruned_by
    return ev


def _broken(curves: Curves, pruned_by: str | None, pruned_reason: str | None) -> _Verdict | None:
    """Rules 1 and 2: a broken pipeline at the first step or in the loss, or divergence."""
    if pruned_by == "divergence" and pruned_reason and _FIRST_STEP.search(pruned_reason):
        return (
            "data_pipeline_suspect",
            f"non-finite at the very first step, before any update ({pruned_reason})",
        )
    negative = [v for v in curves.train_loss + curves.val_loss if v < 0]
    if negative:  # cross-entropy cannot be negative: labels or loss are wired wrong
        return "data_pipeline_suspect", f"loss is negative ({min(negative):.3g})"
    if pruned_by == "divergence":
        return "diverged", f"stopped by the divergence guard: {pruned_reason}"
    if curves.epochs >= 2:
        g0, g1 = curves.grad_max[0], curves.grad_max[-1]
        if g0 > 0 and g1 > GRAD_EXPLODE_FACTOR * g0:
            return "diverged", f"max gradient norm grew from {g0:.3g} to {g1:.3g}"
        l0, l1 = curves.train_loss[0], curves.train_loss[-1]
        if l0 > 0 and l1 > LOSS_EXPLODE_FACTOR * l0:
            return "diverged", f"training loss grew from {l0:.3g} to {l1:.3g}"
    return None


def _leaked_or_shuffled(
    curves: Curves,
    ts: list[float],
    vs: list[float],
    metric: str,
    chance: float,
    other_val_skills: list[float] | None,
) -> _Verdict | None:
    """Rule 3: validation easier than training throughout, or every trial at chance."""
    if all(v - t > VAL_ABOVE_TRAIN for t, v in zip(ts, vs, strict=True)):
        return (
            "data_pipeline_suspect",
            f"validation skill above training skill in every epoch (last {vs[-1]:.2f} vs "
            f"{ts[-1]:.2f}): the validation rows look easier than, or leaked from, the training rows",
        )
    others = [s for s in (other_val_skills or []) if s is not None]
    if vs[-1] < CHANCE_SKILL and len(others) + 1 >= MIN_TRIALS_ALL_CHANCE:
        if all(s < CHANCE_SKILL for s in others):
            return (
                "data_pipeline_suspect",
                f"validation {metric} {curves.val_score[-1]:.4f} is at chance ({chance:.4f}) here "
                f"and in all {len(others)} other trials: the labels may not match the features",
            )
    return None


def _fit(
    curves: Curves,
    ts: list[float],
    vs: list[float],
    metric: str,
    chance: float,
    best_val_skill: float | None,
) -> _Verdict:
    """Rules 4 to 6: over-fitting, under-fitting, or healthy."""
    gap, gap0 = ts[-1] - vs[-1], ts[0] - vs[0]
    if gap >= OVERFIT_GAP:
        grew = curves.epochs >= 2 and gap - gap0 >= OVERFIT_GAP_GROWTH
        i = int(np.nanargmin(curves.val_loss))
        vmin, vlast = curves.val_loss[i], curves.val_loss[-1]
        rising = vlast > vmin * (1 + VAL_LOSS_RISE) and curves.train_loss[-1] < curves.train_loss[i]
        if grew or rising:
            why = (
                f"train {metric} {curves.train_score[-1]:.4f} vs validation "
                f"{curves.val_score[-1]:.4f} (skill gap {gap:.2f}, {gap0:.2f} after epoch 1)"
            )
            if rising:
                why += (
                    f"; validation loss rose from {vmin:.3g} (epoch {i + 1}) to {vlast:.3g} while "
                    f"training loss fell to {curves.train_loss[-1]:.3g}"
                )
            return "overfitting", why
    if ts[-1] < UNDERFIT_SKILL:
        return (
            "underfitting",
            f"train {metric} {curves.train_score[-1]:.4f} is close to chance ({chance:.4f}; "
            f"skill {ts[-1]:.2f} < {UNDERFIT_SKILL:g}) after {curves.epochs} epoch(s)",
        )
    if best_val_skill is not None and ts[-1] < best_val_skill - UNDERFIT_BEHIND_BEST:
        return (
            "underfitting",
            f"train skill {ts[-1]:.2f} is far below the study's best validation skill "
            f"{best_val_skill:.2f}: the model cannot even fit its training data",
        )
    return "healthy", f"train {metric} {curves.train_score[-1]:.4f}, validation {curves.val_score[-1]:.4f}"


def record_diagnosis(trial: Any, recorder: CurveRecorder, metric: str, chance: float) -> str:
    """Diagnose a finished (complete or pruned) trial against the study so far and
    store ``diagnosis``, ``diagnosis_evidence`` and ``diagnosis_text`` on it.

    Never raises: a diagnosis must not turn a finished trial into a failed one; a
    problem is recorded as ``diagnosis_error`` instead.
    """
    try:
        return _record(trial, recorder, metric, chance)
    except Exception as e:
        trial.set_user_attr("diagnosis_error", f"{type(e).__name__}: {e}"[:500])
        return ""


def _record(trial: Any, recorder: CurveRecorder, metric: str, chance: float) -> str:
    import optuna

    curves = recorder.curves()
    others = None
    # Reading every trial costs a storage round trip per trial on a large study:
    # only a trial at chance needs the others (the all-at-chance rule).
    if curves.epochs and skill(curves.val_score[-1], metric, chance) < CHANCE_SKILL:
        done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        others = [
            t.user_attrs["diagnosis_evidence"].get("val_skill")
            for t in trial.study.get_trials(deepcopy=False, states=done)
            if t.number != trial.number and "diagnosis_evidence" in t.user_attrs
        ]
    best = None
    try:
        bt = trial.study.best_trial
        if bt.number != trial.number and bt.value is not None:
            best = skill(bt.value, metric, chance)
    except ValueError:
        pass
    attrs = trial.user_attrs
    name, ev, text = diagnose(
        curves,
        metric,
        chance,
        pruned_by=attrs.get("pruned_by"),
        pruned_reason=attrs.get("pruned_reason"),
        best_val_skill=best,
        other_val_skills=others,
        fold_epochs=attrs.get("fold_epochs"),
    )
    trial.set_user_attr("diagnosis", name)
    trial.set_user_attr("diagnosis_evidence", ev)
    trial.set_user_attr("diagnosis_text", text)
    return name
