"""Cost of the pre-flight column checks on tables (constant, duplicate and label-leaking
columns, on the non-test rows), against the whole pre-flight and one training epoch.

For each table:

  pre-flight = check_dataset + check_splits (everything, the column checks included)
  columns    = check_splits minus its test-duplicate check (constant + duplicate + leakage)
  leak       = tuner.run.leakage.leaking_columns alone
  trees      = the columns the vectorized screen leaves for the one-feature trees (counted
               on the first LEAK_MAX_ROWS non-test rows; the check samples them at random)
  epoch      = one epoch of an MLP (width 64, depth 2, batch 256) on the non-test rows

Tables: sklearn digits flattened (1797 x 64, real pixel values), the same with a copy of
the label and a constant column appended, and random normal tables (20 x 5,000,
500 x 5,000, 2,000 x 20,000). Run: ``python benchmarks/preflight_columns.py [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from objectives.dataset import Dataset  # noqa: E402
from objectives.guard import DivergenceGuard  # noqa: E402
from objectives.models import ModelSpec, build_model, input_stats  # noqa: E402
from objectives.splits import make_splits  # noqa: E402
from objectives.training import fit  # noqa: E402
from search_spaces.params import HParams  # noqa: E402
from tuner.config import DivergenceConfig, validate_config  # noqa: E402
from tuner.run import leakage, preflight  # noqa: E402


def _best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _tables() -> list[tuple[str, np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype(np.float32), d.target.astype(np.int64)
    rng = np.random.default_rng(0)
    out = [("digits", X, y), ("digits + label + const", np.c_[X, y, np.zeros(len(y))].astype(np.float32), y)]
    for features, rows, classes in ((20, 5000, 3), (500, 5000, 10), (2000, 20000, 10)):
        Xr = rng.normal(size=(rows, features)).astype(np.float32)
        out.append((f"{features} x {rows:,}", Xr, rng.integers(0, classes, rows)))
    return out


def _epoch(ds: Dataset, rows: np.ndarray) -> None:
    hp = HParams.resolve({"width": 64, "depth": 2}, 256)
    mean, std = input_stats(ds.X[rows], True)
    model = build_model(ModelSpec("mlp", ds.sample_shape, ds.n_classes), hp, mean, std)
    X, y = torch.as_tensor(ds.X[rows]), torch.as_tensor(ds.y[rows])
    guard = DivergenceGuard(DivergenceConfig())
    fit(
        model,
        hp,
        X,
        y,
        epochs=1,
        metric="balanced_accuracy",
        n_classes=ds.n_classes,
        guard=guard,
        fold=0,
        seed=0,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = validate_config(
        {"name": "bench", "data": {"source": "t.npz", "folds": 5}, "search_space": {"lr": 1e-3}},
        base_dir=Path("."),
        source="bench",
    )
    print(f"{'table':>24} {'pre-flight s':>13} {'columns s':>10} {'leak s':>8} {'trees':>6} {'epoch s':>8}")
    for name, X, y in _tables():
        classes = [str(c) for c in range(int(y.max()) + 1)]
        ds = Dataset(X=X, y=y, classes=classes, source=name)
        sp = make_splits(y, test_size=0.2, folds=5, seed=0)
        pre = _best(
            lambda ds=ds, sp=sp: (
                preflight.check_dataset(config, ds),
                preflight.check_splits(config, ds, sp),
            ),
            args.repeat,
        )
        cols = _best(lambda ds=ds, sp=sp: preflight._columns(config, ds, sp.trainval), args.repeat)
        Xt, yt = X[sp.trainval], y[sp.trainval]
        varying = np.flatnonzero(Xt.min(axis=0) != Xt.max(axis=0))
        leak = _best(lambda Xt=Xt, yt=yt, v=varying: leakage.leaking_columns(Xt, yt, v, seed=0), args.repeat)
        rows = np.arange(min(len(yt), leakage.LEAK_MAX_ROWS))
        _, codes = np.unique(yt[rows], return_inverse=True)
        trees = int(
            leakage._screen(Xt[rows][:, varying[: leakage.LEAK_MAX_FEATURES]], codes, codes.max() + 1).sum()
        )
        ep = _best(lambda ds=ds, sp=sp: _epoch(ds, sp.trainval), args.repeat)
        print(f"{name:>24} {pre:>13.4f} {cols:>10.4f} {leak:>8.4f} {trees:>6} {ep:>8.4f}")


if __name__ == "__main__":
    main()
