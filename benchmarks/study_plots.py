"""What the study plots cost at the end of `run_study` (issue #7), by study size.

Fills in-memory studies (ask/tell, no training) of N trials with fold-by-fold curves,
then times each figure of ``tuner.views.plots.study_figures`` plus the PNG encoding, against
a baseline measured in the same run: one plain matplotlib line plot of the same size
saved as PNG. The machine may be shared and noisy: read the ratios.

    python benchmarks/study_plots.py [--trials 30 200]
"""

from __future__ import annotations

import argparse
import random
import time
import warnings

import optuna

from tuner.views.plots import _plt, figure_png, learning_curves_figure

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore")


def make_study(n: int, epochs: int = 10, folds: int = 5) -> optuna.Study:
    rng = random.Random(0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for i in range(n):
        t = study.ask()
        lr = t.suggest_float("lr", 1e-4, 1e-1, log=True)
        t.suggest_float("dropout", 0.0, 0.6)
        t.suggest_categorical("batchnorm", ["none", "before_activation", "after_activation"])
        t.suggest_int("width", 16, 128, step=16)
        v = 0.0
        for step in range(epochs * folds):
            v = 0.95 - abs(lr - 0.01) * 3 - 0.05 * rng.random()
            t.report(v, step)
            if i % 3 == 2 and step == epochs + 2:
                t.set_user_attr("pruned_by", "MedianPruner")
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(t, v)
    return study


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, nargs="+", default=[30, 200])
    args = ap.parse_args()
    from optuna.visualization import matplotlib as ovm

    plt = _plt()

    def baseline() -> None:
        fig, ax = plt.subplots(figsize=(8, 5))
        ax.plot(range(100), [i * 0.01 for i in range(100)])
        figure_png(fig)

    def draws(study: optuna.Study) -> dict:
        return {
            "optimization_history": lambda: ovm.plot_optimization_history(study).get_figure(),
            "param_importances": lambda: ovm.plot_param_importances(study).get_figure(),
            "parallel_coordinate": lambda: ovm.plot_parallel_coordinate(study).get_figure(),
            "learning_curves": lambda: learning_curves_figure(study, "acc", epochs_per_fold=10),
        }

    # warm-up: matplotlib's font cache and the importance evaluator's imports are one-off
    # costs of the process, not of the study size
    timed(baseline)
    for draw in draws(make_study(10)).values():
        with plt.rc_context():
            figure_png(draw())
    for n in args.trials:
        study = make_study(n)
        base = min(timed(baseline) for _ in range(3))
        print(f"{n} trials  (baseline: one line plot + PNG = {base:.3f} s)")
        total = 0.0
        for name, draw in draws(study).items():
            with plt.rc_context():
                t = timed(lambda draw=draw: figure_png(draw()))
            total += t
            print(f"  {name:<22} {t:7.3f} s  {t / base:6.1f}x baseline")
        print(f"  {'all four':<22} {total:7.3f} s  {total / base:6.1f}x baseline")


if __name__ == "__main__":
    main()
