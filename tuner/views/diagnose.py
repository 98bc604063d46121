"""One diagnosis per trial, from its curves: healthy | overfitting | underfitting |
vanishing_gradients | diverged | data_pipeline_suspect | stopped_early, with the
evidence numbers and the remedy.

Scores are compared as *skill*: 0 at chance, 1 at a perfect score
(``(score - chance) / (perfect - chance)``; for log loss ``1 - loss / chance_loss``),
so one set of thresholds serves every metric and class count. Chance is what a
naive predictor scores given the class frequencies (``chance_level``); for regression
the best constant on the training target (``regression_chance``; R² for rmse).

The rules, in order (the first that matches wins; thresholds are the constants below,
calibrated on the real runs of ``tests/integration/diagnosis_cases.py``):

1. ``data_pipeline_suspect``: the loss or gradient was non-finite at the very first
   step (before any update, so it is the data, not the learning rate), or a loss is
   negative (cross-entropy cannot be: the labels or the loss are wired wrong).
2. ``diverged``: stopped by the divergence guard, or the gradient norm grew
   ``GRAD_EXPLODE_FACTOR`` x from the first epoch, or the training loss ended
   ``LOSS_EXPLODE_FACTOR`` x above the first epoch's.
3. ``data_pipeline_suspect``: validation skill above training skill by more than
   ``VAL_ABOVE_TRAIN`` in every epoch; or the model fits its training rows (train skill
   ``TRAIN_FITS``) while validation stays near chance (median skill below ``NEAR_CHANCE``):
   nothing it learns carries over, as with labels that do not match the features.
4. ``vanishing_gradients``: training stuck at chance (train skill below
   ``UNDERFIT_SKILL``) and the gradient gone before it reaches the input layer (the
   first / last layer's gradient norm, median over epochs, at most ``VANISH_RATIO``),
   or collapsed (the last epoch's max norm at most ``GRAD_COLLAPSE`` x its peak) with
   the training loss flat (within ``FLAT_LOSS`` of the first epoch's).
5. ``overfitting``: the training rows memorized (train skill ``MEMORIZED``, validation
   ``MEMORIZED_GAP`` behind, its loss ``MEMORIZED_LOSS_RATIO`` x the training loss); or a
   skill gap of ``OVERFIT_MIN_GAP`` (the floor that keeps late-epoch noise out) with the
   validation loss ``OVERFIT_RISE`` above its minimum while the training loss fell, or
   with the gap at ``OVERFIT_GAP`` and grown ``OVERFIT_GAP_GROWTH`` since epoch 1.
   ``severe`` from a gap of ``SEVERE_GAP``, or a rise of ``SEVERE_RISE`` with the gap
   past ``OVERFIT_MIN_GAP``; else ``mild``.
6. ``stopped_early``: pruned (by the pruner or fold pruning) or with no complete epoch,
   before its behaviour could be judged (a pruned trial is not called under-fitting:
   the pruner stopped it while it learned); the text says what was seen.
7. ``underfitting``: train skill below ``UNDERFIT_SKILL`` (close to chance), or more
   than ``UNDERFIT_BEHIND_BEST`` below the study's best validation skill.
8. ``healthy``.

Whatever the verdict, the folds that early stopping ended with their validation loss
``ES_RISE`` above its best while the training loss kept falling are named in the
evidence (``early_stopping``) and the text: over-fitting that early stopping caught.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from tuner.views.caught import ES_RISE, early_stopping_caught
from tuner.views.curves import CurveRecorder, Curves
from tuner.views.remedies import REMEDIES, remedy
from tuner.views.skill import (
    REGRESSION_METRICS,
    baseline_value,
    baseline_words,
    chance_for,
    chance_level,
    skill,
)

__all__ = [
    "DIAGNOSES",
    "ES_RISE",
    "REMEDIES",
    "CurveRecorder",
    "Curves",
    "chance_for",
    "chance_level",
    "diagnose",
    "record_diagnosis",
    "skill",
]

DIAGNOSES = (
    "healthy",
    "overfitting",
    "underfitting",
    "vanishing_gradients",
    "diverged",
    "data_pipeline_suspect",
    "stopped_early",
)

OVERFIT_MIN_GAP = 0.10  # over-fitting needs this train − validation skill gap at the end, and
OVERFIT_RISE = 0.05  # the validation loss this fraction above its minimum, training loss falling,
MEMORIZED = 0.98  # or the training rows memorized (train skill this high) ...
MEMORIZED_GAP = 0.05  # ... with validation this far behind
MEMORIZED_LOSS_RATIO = 10.0  # ... and a validation loss an order of magnitude above the training loss,
OVERFIT_GAP = 0.15  # or a gap this large ...
OVERFIT_GAP_GROWTH = 0.05  # ... that grew at least this much since the first epoch
SEVERE_RISE = 0.50  # a validation loss 50 % above its minimum (with the gap past its floor)
SEVERE_GAP = 0.30  # or a skill gap of 0.3 is severe over-fitting
UNDERFIT_SKILL = 0.30  # final train skill below this is close to chance
UNDERFIT_BEHIND_BEST = 0.30  # or train skill this far below the study's best validation skill
TRAIN_FITS = 0.30  # train skill from which a model is fitting its training rows
FLAT_LOSS = 0.05  # a training loss within 5 % of its first epoch's is flat
VANISH_RATIO = 0.03  # first / last layer's gradient norm: the gradient dies on its way back
GRAD_COLLAPSE = 0.01  # last epoch's max gradient norm / its peak: the gradient collapsed
GRAD_EXPLODE_FACTOR = 100.0  # last epoch's max grad norm / first epoch's
LOSS_EXPLODE_FACTOR = 3.0  # last epoch's train loss / first epoch's
VAL_ABOVE_TRAIN = 0.15  # validation skill above train skill in every epoch
CHANCE_SKILL = 0.05  # validation skill below this is at chance
NEAR_CHANCE = 0.15  # validation skill whose median over the epochs is below this stayed near chance
MIN_TRIALS_ALL_CHANCE = 3  # trials at chance before the study as a whole is suspect

# the guard's message for a non-finite value at a fold's first optimizer step
_FIRST_STEP = re.compile(r"is -?(nan|inf)\b.*epoch 0, step 0\)")


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
    fold_epochs: list[dict[str, Any]] | None = None,
) -> tuple[str, dict[str, Any], str]:
    """Diagnose one trial: ``(diagnosis, evidence, text)``; see the module docstring.

    Args:
        curves: the trial's per-epoch curves (may be empty for a trial stopped early).
        metric: the study's metric; ``chance`` its chance level (``chance_for``).
        pruned_by, pruned_reason: the trial's pruning attrs, if it was stopped.
        best_val_skill: the study's best validation skill so far (another trial's).
        fold_epochs: what early stopping saw of each fold (the trial's ``fold_epochs``).
    """
    ts = [skill(v, metric, chance) for v in curves.train_score]
    vs = [skill(v, metric, chance) for v in curves.val_score]
    ev = _evidence(curves, ts, vs, metric, chance, pruned_by)
    stopped = pruned_by is not None and pruned_by != "divergence"
    name, why = (
        _broken(curves, pruned_by, pruned_reason)
        or (None if curves.epochs else ("stopped_early", _unseen(pruned_by, pruned_reason)))
        or _leaked_or_shuffled(curves, ts, vs, metric)
        or _vanishing(curves, ts, metric, ev)
        or _overfit(curves, ts, vs, metric, ev)
        or (_stopped(curves, ts, vs, metric, best_val_skill, pruned_by) if stopped else None)
        or _underfit(curves, ts, metric, chance, best_val_skill)
        or ("healthy", f"train {metric} {curves.train_score[-1]:.4f}, validation {curves.val_score[-1]:.4f}")
    )
    ev["rule"] = why
    caught = early_stopping_caught(fold_epochs or [], ev)
    if caught and name != "data_pipeline_suspect":
        why += f"; {caught}"
    label = f"{name} ({ev['severity']})" if "severity" in ev else name
    fix = remedy(name, metric)
    return name, ev, f"{label}: {why}" + (f". Try: {fix}" if fix else "")


def _unseen(pruned_by: str | None, reason: str | None) -> str:
    if pruned_by:
        return f"stopped by the {pruned_by} before a complete epoch: {reason}"
    return "no complete epoch to judge"


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


def _leaked_or_shuffled(curves: Curves, ts: list[float], vs: list[float], metric: str) -> _Verdict | None:
    """Rule 3: validation easier than training throughout, or training fitting while
    validation stays at chance in every epoch."""
    if all(v - t > VAL_ABOVE_TRAIN for t, v in zip(ts, vs, strict=True)):
        return (
            "data_pipeline_suspect",
            f"validation skill above training skill in every epoch (last {vs[-1]:.2f} vs "
            f"{ts[-1]:.2f}): the validation rows look easier than, or leaked from, the training rows",
        )
    typical = float(np.median(vs))  # not the max: a small fold's score jumps around chance
    if ts[-1] >= TRAIN_FITS and typical < NEAR_CHANCE:
        labels = "targets" if metric in REGRESSION_METRICS else "labels"
        return (
            "data_pipeline_suspect",
            f"the model fits its training rows (train {metric} {curves.train_score[-1]:.4f}, skill "
            f"{ts[-1]:.2f}) but validation stays near {baseline_words(metric)} over its "
            f"{curves.epochs} epochs (median skill {typical:.2f} < {NEAR_CHANCE:g}, last {vs[-1]:.2f}): "
            f"nothing it learns carries over, as when the {labels} do not match the features "
            "(shuffled, misaligned) or the features hold no signal it can find",
        )
    return None


def _vanishing(curves: Curves, ts: list[float], metric: str, ev: dict[str, Any]) -> _Verdict | None:
    """Rule 4: training stuck at chance, and the gradient gone before the input layer
    (or collapsed, with the training loss flat)."""
    if curves.epochs < 2 or ts[-1] >= UNDERFIT_SKILL:
        return None
    l0, l1 = curves.train_loss[0], curves.train_loss[-1]
    ratios = [r for r in (curves.grad_ratio or []) if math.isfinite(r)]
    ratio = float(np.median(ratios)) if ratios else None
    peak, last = max(curves.grad_max), curves.grad_max[-1]
    if ratio is not None:
        ev["grad_ratio_first_last"] = float(f"{ratio:.3g}")
    stuck = (
        f"training is stuck at {baseline_words(metric)} (skill {ts[-1]:.2f}; loss {l0:.3g} → {l1:.3g} "
        f"over {curves.epochs} epochs)"
    )
    if ratio is not None and ratio <= VANISH_RATIO:
        return (
            "vanishing_gradients",
            f"{stuck}, and the input layer gets {ratio:.2g}x the output layer's gradient norm "
            f"(median over epochs; ≤ {VANISH_RATIO:g}): the gradient dies on its way back",
        )
    if peak > 0 and last <= GRAD_COLLAPSE * peak and l0 > 0 and l1 >= (1 - FLAT_LOSS) * l0:
        return (
            "vanishing_gradients",
            f"{stuck}, the loss flat, and the max gradient norm collapsed from {peak:.3g} to {last:.3g}",
        )
    return None


def _overfit(
    curves: Curves, ts: list[float], vs: list[float], metric: str, ev: dict[str, Any]
) -> _Verdict | None:
    """Rule 5: a train − validation gap past its floor, and the validation loss climbing
    from its minimum as the training loss falls, or the training rows memorized, or a
    large gap that grew."""
    gap, gap0 = ts[-1] - vs[-1], ts[0] - vs[0]
    memorized = (
        ts[-1] >= MEMORIZED
        and gap >= MEMORIZED_GAP
        and curves.val_loss[-1] >= MEMORIZED_LOSS_RATIO * curves.train_loss[-1]
    )
    if gap < OVERFIT_MIN_GAP and not memorized:
        return None
    i = int(np.nanargmin(curves.val_loss))
    vmin, vlast = curves.val_loss[i], curves.val_loss[-1]
    rise = vlast / vmin - 1 if vmin > 0 else 0.0
    rising = rise >= OVERFIT_RISE and curves.train_loss[-1] < curves.train_loss[i]
    grew = gap >= OVERFIT_GAP and curves.epochs >= 2 and gap - gap0 >= OVERFIT_GAP_GROWTH
    if not (rising or memorized or grew):
        return None
    ev["val_loss_rise"] = _r(rise)
    # a loss that climbs while the scores stay close is over-confidence, not yet severe
    severe = gap >= SEVERE_GAP or (rise >= SEVERE_RISE and gap >= OVERFIT_MIN_GAP)
    ev["severity"] = "severe" if severe else "mild"
    why = (
        f"train {metric} {curves.train_score[-1]:.4f} vs validation "
        f"{curves.val_score[-1]:.4f} (skill gap {gap:.2f}, {gap0:.2f} after epoch 1)"
    )
    if rising:
        why += (
            f"; validation loss rose {rise:.0%} from {vmin:.3g} (epoch {i + 1}) to {vlast:.3g} "
            f"while training loss fell to {curves.train_loss[-1]:.3g}"
        )
    elif memorized:
        why += (
            f"; the training rows are memorized (training loss {curves.train_loss[-1]:.3g}, "
            f"validation loss {curves.val_loss[-1]:.3g})"
        )
    return "overfitting", why


def _underfit(
    curves: Curves,
    ts: list[float],
    metric: str,
    chance: float,
    best_val_skill: float | None,
) -> _Verdict | None:
    """Rule 7: training close to chance, or far below the study's best validation."""
    if ts[-1] < UNDERFIT_SKILL:
        return (
            "underfitting",
            f"train {metric} {curves.train_score[-1]:.4f} is close to {baseline_words(metric)} "
            f"({baseline_value(metric, chance)}; "
            f"skill {ts[-1]:.2f} < {UNDERFIT_SKILL:g}) after {curves.epochs} epoch(s): the "
            "model cannot fit even its training rows",
        )
    if best_val_skill is not None and ts[-1] < best_val_skill - UNDERFIT_BEHIND_BEST:
        return (
            "underfitting",
            f"train skill {ts[-1]:.2f} is far below the study's best validation skill "
            f"{best_val_skill:.2f}: the model cannot even fit its training data",
        )
    return None


def _stopped(
    curves: Curves,
    ts: list[float],
    vs: list[float],
    metric: str,
    best_val_skill: float | None,
    pruned_by: str | None,
) -> _Verdict:
    """Rule 6: pruned before it showed how it trains; say what was seen, numbers first
    (the report's table shows the text's first 100 characters)."""
    who = {"pruner": "the pruner", "fold": "fold pruning"}.get(pruned_by or "", pruned_by)
    trend = (
        f"still learning, train skill {ts[0]:.2f} → {ts[-1]:.2f}"
        if curves.epochs >= 2 and ts[-1] > ts[0]
        else f"train skill {ts[-1]:.2f}"
    )
    best = f", against the study's best {best_val_skill:.2f}" if best_val_skill is not None else ""
    return (
        "stopped_early",
        f"validation {metric} {curves.val_score[-1]:.4f}, train {curves.train_score[-1]:.4f} when "
        f"{who} stopped it after {curves.epochs} epoch(s) over {curves.folds} fold(s) ({trend}; "
        f"validation skill {vs[-1]:.2f}{best}): too soon to judge how it trains",
    )


def record_diagnosis(
    trial: Any, recorder: CurveRecorder, metric: str, chance: float, best_value: Callable[[], float | None]
) -> str:
    """Diagnose a finished (complete or pruned) trial against the study's best value
    (``best_value()``: None before any trial completed; the trial still runs, so it is
    another trial's) and store ``diagnosis``, ``diagnosis_evidence`` and
    ``diagnosis_text`` on it.

    Never raises: a diagnosis must not turn a finished trial into a failed one; a
    problem (the lookup's too) is recorded as ``diagnosis_error`` instead.
    """
    try:
        return _record(trial, recorder, metric, chance, best_value())
    except Exception as e:
        trial.set_user_attr("diagnosis_error", f"{type(e).__name__}: {e}"[:500])
        return ""


def _record(trial: Any, recorder: CurveRecorder, metric: str, chance: float, best_value: float | None) -> str:
    curves = recorder.curves()
    best = skill(best_value, metric, chance) if best_value is not None else None
    attrs = trial.user_attrs
    name, ev, text = diagnose(
        curves,
        metric,
        chance,
        pruned_by=attrs.get("pruned_by"),
        pruned_reason=attrs.get("pruned_reason"),
        best_val_skill=best,
        fold_epochs=attrs.get("fold_epochs"),
    )
    trial.set_user_attr("diagnosis", name)
    trial.set_user_attr("diagnosis_evidence", ev)
    trial.set_user_attr("diagnosis_text", text)
    return name
