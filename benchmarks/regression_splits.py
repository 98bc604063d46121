"""Which regression split steadies the scores: plain shuffled K-fold (``kfold``) or
K-fold stratified on the target's quantile bins (``quantile``)?

For each dataset (scikit-learn's diabetes; a 300-row linear target from
``make_regression``; the same made skewed with ``exp``) and each seed, both splitters of
``objectives.splits.make_splits`` draw a 20% test split and 5 folds; a RidgeCV (in a
StandardScaler pipeline) is scored on every fold and, refit on the non-test rows, on the
test split. Printed per dataset and split, as ratios to the mean so datasets compare:

  fold cv    median over seeds of (sd of the 5 fold RMSEs / their mean): the fold noise
             fold pruning's paired test works against
  |gap|      median over seeds of |test RMSE - CV RMSE| / CV RMSE: how far the test score
             lands from what cross-validation promised
  test cv    sd over seeds of the test RMSE / its mean: how much the held-out score
             depends on the draw

Lower is steadier in all three. Run: ``python benchmarks/regression_splits.py [--seeds 40]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from objectives.splits import make_splits  # noqa: E402


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_diabetes, make_regression

    rng = np.random.default_rng(1)
    X, y0 = make_regression(n_samples=300, n_features=8, noise=10, random_state=1)
    skewed = np.exp(y0 / y0.std()) * 100 + rng.normal(0, 5, len(y0))
    return {"diabetes": load_diabetes(return_X_y=True), "linear-300": (X, y0), "skewed-300": (X, skewed)}


def steadiness(X: np.ndarray, y: np.ndarray, split: str, seeds: int) -> tuple[float, float, float]:
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import root_mean_squared_error as rmse
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def ridge() -> object:
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))

    fold_cv, gap, test = [], [], []
    for seed in range(seeds):
        s = make_splits(y, test_size=0.2, folds=5, seed=seed, task="regression", split=split)
        scores = [rmse(y[va], ridge().fit(X[tr], y[tr]).predict(X[va])) for tr, va in s.folds]  # type: ignore[attr-defined]
        t = rmse(y[s.test], ridge().fit(X[s.trainval], y[s.trainval]).predict(X[s.test]))  # type: ignore[attr-defined]
        cv = float(np.mean(scores))
        fold_cv.append(np.std(scores) / cv)
        gap.append(abs(t - cv) / cv)
        test.append(t)
    return float(np.median(fold_cv)), float(np.median(gap)), float(np.std(test) / np.mean(test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    args = parser.parse_args()
    print(f"{'dataset':<12} {'split':<9} {'fold cv':>8} {'|gap|':>8} {'test cv':>8}   ({args.seeds} seeds)")
    for name, (X, y) in datasets().items():
        for split in ("kfold", "quantile"):
            f, g, t = steadiness(X, y, split, args.seeds)
            print(f"{name:<12} {split:<9} {f:8.3f} {g:8.3f} {t:8.3f}")


if __name__ == "__main__":
    main()
