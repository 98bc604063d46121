"""A trial run's ``fold_curves.png``: every fold's train and validation curves overlaid
against the epoch (loss on the left, the metric on the right).

The points are kept as the trial's metrics are sent, and the figure is drawn when the
run closes: in the MLflow writer process by default, so off the training process.
MLflow's own charts show each curve family once, against the global step Optuna uses;
this figure is where the folds can be told apart.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

__all__ = ["FILE", "FoldCurves"]

FILE = "fold_curves.png"


class FoldCurves:
    """Per fold, per epoch: the points of the train and validation curves of one trial."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.keys = ("train_loss", "val_loss", f"train_{metric}", f"val_{metric}")
        # key -> fold -> [(epoch, value)]
        self.points: dict[str, dict[int, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))

    def __bool__(self) -> bool:
        return bool(self.points)

    def add(self, fold: int, epoch: int, rows: list[tuple[str, float, int, int]]) -> None:
        for key, value, _, _ in rows:
            if key in self.keys:
                self.points[key][fold].append((epoch, value))

    def png(self, title: str) -> bytes:
        """The figure as PNG bytes: a bare ``Figure`` (no pyplot state), a fixed layout and
        a modest resolution. The figure and its axes are made once per thread and metric
        and only their lines, legend and title are replaced: 37 ms of CPU for 2 folds of
        11 epochs instead of 52 ms when made anew (41 against 61 ms for 3 folds of 15),
        on the core the MLflow writer shares with the storage writer."""
        import io

        from matplotlib.lines import Line2D

        fig, axes = _figure(self.metric)
        folds = sorted({f for per_fold in self.points.values() for f in per_fold})
        colours = [f"C{f % 10}" for f in folds]
        for ax, family in zip(axes, ("loss", self.metric), strict=True):
            for fold, c in zip(folds, colours, strict=True):
                for split, style in (("train", "--"), ("val", "-")):
                    pts = self.points.get(f"{split}_{family}", {}).get(fold)
                    if pts:
                        x, y = zip(*pts, strict=True)
                        marker = "." if len(pts) <= 12 else None  # a short curve's points show
                        ax.plot([e + 1 for e in x], y, style, color=c, lw=1.3, marker=marker, ms=4)
            ax.relim()
            ax.autoscale_view()
        # one legend: colour = fold, line style = split
        handles = [
            Line2D([], [], color=c, lw=2, label=f"fold {f}") for f, c in zip(folds, colours, strict=True)
        ]
        handles += [
            Line2D([], [], color="grey", ls="--", label="train"),
            Line2D([], [], color="grey", ls="-", label="validation"),
        ]
        axes[1].legend(handles=handles, fontsize=8, loc="best")
        fig.suptitle(title)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()


_figures = threading.local()


def _figure(metric: str) -> tuple[Any, Any]:
    """This thread's figure for ``metric``: made with its fixed parts on first use, its
    curves removed on every later one."""
    figures = getattr(_figures, "by_metric", None)
    if figures is None:
        figures = _figures.by_metric = {}
    if metric not in figures:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        fig = Figure(figsize=(10, 3.8))
        axes = fig.subplots(1, 2)
        for ax, family in zip(axes, ("loss", metric), strict=True):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(family)
            ax.grid(alpha=0.3)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.88, wspace=0.22)
        figures[metric] = (fig, axes)
    fig, axes = figures[metric]
    for ax in axes:
        for line in list(ax.lines):
            line.remove()
    return fig, axes
