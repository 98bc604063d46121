"""Matplotlib figures (no internet, no browser needed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = [
    "STUDY_PLOTS",
    "confusion_matrix_figure",
    "figure_png",
    "learning_curves_figure",
    "log_study_plots",
    "mistakes_figure",
    "predicted_actual_figure",
    "residuals_figure",
    "study_figures",
]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_figure(cm: np.ndarray, labels: list[str]) -> Any:
    plt = _plt()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.5 * n, 1.0 + 0.5 * n))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            color = "white" if cm[i, j] > cm.max() / 2 else "black"
            ax.text(j, i, int(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    ax.set_title("held-out test confusion matrix")
    fig.tight_layout()
    return fig


def predicted_actual_figure(y: np.ndarray, pred: np.ndarray, title: str) -> Any:
    """Regression refits: predicted against actual on the held-out test split, with
    the diagonal a perfect model would sit on. A bare ``Figure``, for ``log_figure``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5))
    ax = fig.add_subplot()
    ax.scatter(y, pred, s=12, alpha=0.6, edgecolors="none")
    lo, hi = float(min(y.min(), pred.min())), float(max(y.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=1, label="perfect")
    ax.axhline(float(np.mean(y)), ls=":", color="orange", lw=1, label="test mean")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def residuals_figure(y: np.ndarray, pred: np.ndarray) -> Any:
    """Regression refits: residuals (actual - predicted) against the prediction, and
    their histogram: a trend or a funnel shows what the model misses."""
    from matplotlib.figure import Figure

    residual = y - pred
    fig = Figure(figsize=(9, 4))
    ax, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    ax.scatter(pred, residual, s=12, alpha=0.6, edgecolors="none")
    ax.axhline(0.0, ls="--", color="grey", lw=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual (actual - predicted)")
    ax.set_title("held-out test residuals", fontsize=10)
    hist.hist(residual, bins=min(30, max(5, len(residual) // 5)), orientation="horizontal", color="C0")
    hist.axhline(0.0, ls="--", color="grey", lw=1)
    hist.set_xlabel("count")
    fig.tight_layout()
    return fig


def mistakes_figure(images: np.ndarray, titles: list[str], columns: int = 5) -> Any:
    """A grid of images (N, C, H, W), one title under each: grayscale for one channel,
    RGB for three (the mean of the channels otherwise), each scaled to its own min-max.

    A bare ``Figure`` (no pyplot state to close), for ``MlflowClient.log_figure``.
    """
    from matplotlib.figure import Figure

    n = len(images)
    cols = max(1, min(columns, n))
    rows = -(-n // cols)
    # at least 3 tiles wide, so the title fits above a single mistake
    fig = Figure(figsize=(2.2 * max(cols, 3), 2.5 * rows))
    for i, (image, title) in enumerate(zip(images, titles, strict=True)):
        ax = fig.add_subplot(rows, cols, i + 1)
        lo, hi = float(image.min()), float(image.max())
        scaled = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
        if image.shape[0] == 3:
            ax.imshow(np.transpose(scaled, (1, 2, 0)))
        else:
            ax.imshow(scaled.mean(axis=0), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(title, fontsize=7)
        ax.set_axis_off()
    what = "the only mistake" if n == 1 else f"the {n} most confident mistakes"
    fig.suptitle(f"held-out test: {what}", fontsize=10)
    fig.tight_layout()
    return fig


# -- study plots ------------------------------------------------------------------------------

STUDY_PLOTS = ("optimization_history", "param_importances", "parallel_coordinate", "learning_curves")


def study_figures(
    study: Any, metric: str, *, epochs_per_fold: int | None = None, n_pruned: int = 3
) -> tuple[dict[str, Any], dict[str, str]]:
    """The study's figures, drawn with Optuna's matplotlib backend where it has one.

    Args:
        study: an Optuna study (finished or still running: only finished trials are drawn).
        metric: the objective's metric name, for axis labels.
        epochs_per_fold: ``training.max_epochs``; marks the fold boundaries on the curves.
        n_pruned: how many pruned trials' curves to draw beside the best trial's.

    Returns:
        (figures, skipped): name → matplotlib figure, and name → why it was not drawn
        (too few trials for importances, no completed trial yet, ...).
    """
    from optuna.visualization import matplotlib as ovm

    plt = _plt()
    # Optuna's backend switches the global style to ggplot: keep that inside this call
    with plt.rc_context():
        return _study_figures(study, metric, ovm, epochs_per_fold, n_pruned)


def _study_figures(
    study: Any, metric: str, ovm: Any, epochs_per_fold: int | None, n_pruned: int
) -> tuple[dict[str, Any], dict[str, str]]:
    import warnings

    import optuna

    figures: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    from tuner.views.findings import MIN_TRIALS_IMPORTANCE

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    drawers = {
        "optimization_history": (1, lambda: ovm.plot_optimization_history(study, target_name=metric)),
        # the same threshold as the numbers in `tune report`: fewer trials say nothing
        "param_importances": (MIN_TRIALS_IMPORTANCE, lambda: ovm.plot_param_importances(study)),
        "parallel_coordinate": (2, lambda: ovm.plot_parallel_coordinate(study, target_name=metric)),
    }
    for name, (needed, draw) in drawers.items():
        if len(complete) < needed:
            skipped[name] = f"needs {needed} completed trial(s), the study has {len(complete)}"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
                ax = draw()
            fig = _figure_of(ax)
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            figures[name] = fig
        except Exception as e:  # e.g. importances of a space with one value per parameter
            skipped[name] = f"{type(e).__name__}: {e}"
    fig = learning_curves_figure(study, metric, epochs_per_fold=epochs_per_fold, n_pruned=n_pruned)
    if fig is None:
        skipped["learning_curves"] = "no trial reported intermediate values yet"
    else:
        figures["learning_curves"] = fig
    return figures, skipped


def _figure_of(ax: Any) -> Any:
    # Optuna returns an Axes, or an array of Axes for multi-panel plots
    first = ax.flat[0] if hasattr(ax, "flat") else ax
    return first.get_figure()


def learning_curves_figure(
    study: Any, metric: str, *, epochs_per_fold: int | None = None, n_pruned: int = 3
) -> Any:
    """Validation curves (the values the pruners saw) of the best and a few pruned trials.

    Steps run fold by fold (step = fold * max_epochs + epoch), so a curve restarts at
    every fold boundary; dotted lines mark them. Returns None when nothing was reported.
    """
    import optuna

    plt = _plt()
    pruned = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
        if t.intermediate_values
    ]
    try:
        best = study.best_trial
    except ValueError:
        best = None
    chosen: list[tuple[Any, str]] = []
    if best is not None and best.intermediate_values:
        chosen.append((best, f"best #{best.number}"))
    # the latest pruned trials: the ones the pruner judged with the most evidence
    for t in pruned[-n_pruned:]:
        reason = str(t.user_attrs.get("pruned_by") or "pruned")
        chosen.append((t, f"#{t.number} pruned ({reason})"))
    if not chosen:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    last_step = 0
    for t, label in chosen:
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        is_best = best is not None and t.number == best.number
        ax.plot(
            steps,
            values,
            marker="o",
            markersize=3,
            label=label,
            linewidth=2.2 if is_best else 1.2,
            linestyle="-" if is_best else "--",
        )
        last_step = max(last_step, steps[-1])
    if epochs_per_fold:
        for boundary in range(epochs_per_fold, last_step + 1, epochs_per_fold):
            ax.axvline(boundary - 0.5, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("step (fold × max_epochs + epoch)" if epochs_per_fold else "step")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title("learning curves: best trial and pruned trials")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """``fig`` as PNG bytes; closes it."""
    import io

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def log_study_plots(tracker: Any, study: Any, config: StudyConfig) -> list[str]:
    """Log the study plots as PNGs under ``plots/`` on the study's parent MLflow run.

    Never raises: a plot that cannot be drawn or logged becomes a tracker warning, since
    losing a picture must not fail a finished study. Returns the artifact paths logged.
    """
    if not getattr(tracker, "enabled", False) or not tracker.parent_id:
        return []
    logged: list[str] = []
    try:
        figures, _ = study_figures(study, config.objective.metric, epochs_per_fold=config.training.max_epochs)
    except Exception as e:
        tracker.warn(f"could not draw the study plots: {e}")
        return []
    plt = _plt()
    for name, fig in figures.items():
        path = f"plots/{name}.png"
        try:
            tracker.client.log_figure(tracker.parent_id, fig, path)
            logged.append(path)
        except Exception as e:
            tracker.warn(f"could not log {path} to MLflow: {e}")
        finally:
            plt.close(fig)
    return logged
