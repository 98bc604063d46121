"""Cost of the pre-flight checks and of a trial's diagnosis, against work measured in the
same run: making the splits, and one training epoch of a small MLP on the same rows.

For each dataset size (digits' 64 features, tiled and jittered to N rows):

  preflight  = check_dataset + check_splits (NaN/labels, imbalance, scale, test duplicates)
  splits     = make_splits (sklearn's stratified split + K-fold), the baseline it sits beside
  epoch      = one epoch of an MLP (width 64, depth 2, batch 256) on the non-test rows

and prints preflight/splits and preflight/epoch (the check runs once per study; an epoch runs
folds x epochs x trials times). Then the diagnosis of one trial (per-epoch curves of 5 folds x
50 epochs) against one epoch of the digits MLP.
Run: ``python benchmarks/preflight.py [--sizes 1797 20000 100000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from objectives.dataset import Dataset  # noqa: E402
from objectives.guard import DivergenceGuard  # noqa: E402
from objectives.models import ModelSpec, build_model, input_stats  # noqa: E402
from objectives.splits import make_splits  # noqa: E402
from objectives.training import EpochRecord, fit  # noqa: E402
from search_spaces.params import HParams  # noqa: E402
from tuner.config import DivergenceConfig, validate_config  # noqa: E402
from tuner.run.preflight import check_dataset, check_splits  # noqa: E402
from tuner.views.diagnose import CurveRecorder, diagnose  # noqa: E402


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _data(n: int) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    reps = -(-n // len(d.target))
    rng = np.random.default_rng(0)
    X = np.tile(d.data, (reps, 1))[:n].astype(np.float32)
    X += rng.normal(scale=0.01, size=X.shape).astype(np.float32)  # no exact duplicates
    y = np.tile(d.target, reps)[:n].astype(np.int64)
    return Dataset(X=X, y=y, classes=[str(c) for c in range(10)], source=f"digits x{reps}")


def _epoch(ds: Dataset, rows: np.ndarray) -> None:
    hp = HParams.resolve({"width": 64, "depth": 2}, 256)
    mean, std = input_stats(ds.X[rows], True)
    model = build_model(ModelSpec("mlp", ds.sample_shape, 10), hp, mean, std)
    fit(
        model,
        hp,
        torch.as_tensor(ds.X[rows]),
        torch.as_tensor(ds.y[rows]),
        epochs=1,
        metric="balanced_accuracy",
        n_classes=10,
        guard=DivergenceGuard(DivergenceConfig()),
        fold=0,
        seed=0,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1797, 20000, 100000])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    config = validate_config(
        {"name": "bench", "data": {"source": "sklearn:digits", "folds": 5}, "search_space": {"lr": 1e-3}},
        base_dir=Path("."),
        source="bench",
    )
    print(
        f"{'rows':>8} {'preflight s':>12} {'splits s':>9} {'epoch s':>8} {'pre/splits':>11} {'pre/epoch':>10}"
    )
    for n in args.sizes:
        ds = _data(n)
        splits = make_splits(ds.y, test_size=0.2, folds=5, seed=0)
        pre = _best(
            lambda ds=ds, sp=splits: (check_dataset(config, ds), check_splits(config, ds, sp)), args.repeat
        )
        spl = _best(lambda ds=ds: make_splits(ds.y, test_size=0.2, folds=5, seed=0), args.repeat)
        ep = _best(lambda ds=ds, sp=splits: _epoch(ds, sp.trainval), args.repeat)
        print(f"{n:>8} {pre:>12.4f} {spl:>9.4f} {ep:>8.4f} {pre / spl:>11.2f} {pre / ep:>10.3f}")

    rec = CurveRecorder(type("Null", (), {"epoch": lambda *a: None, "fold_done": lambda *a: None})())
    rng = np.random.default_rng(0)
    for fold in range(5):
        for e in range(50):
            t, v = min(1.0, 0.1 + e / 50), min(1.0, 0.1 + e / 60)
            rec.epoch(EpochRecord(fold, e, 1 - t, t, 1 - v, v, *rng.random(2), 0.1), fold * 50 + e)

    def one() -> None:
        diagnose(rec.curves(), "balanced_accuracy", 0.1, best_val_skill=0.9)

    diag = _best(lambda: [one() for _ in range(100)], args.repeat) / 100
    ds = _data(1797)
    splits = make_splits(ds.y, test_size=0.2, folds=5, seed=0)
    ep = _best(lambda: _epoch(ds, splits.folds[0][0]), args.repeat)
    print(
        f"diagnosis of a 5-fold x 50-epoch trial: {diag * 1e3:.3f} ms = {diag / ep:.4f} x one digits epoch "
        f"({ep * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
