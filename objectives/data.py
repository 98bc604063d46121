"""Datasets: load a source into arrays (features, integer labels 0..C-1).

With ``task="regression"`` the target is a number (float64, in the user's units):
``sklearn:diabetes``, a .csv's numeric target column or a .npz's float ``y``;
NaN/inf targets are left for the pre-flight checks to name.

Sources: ``sklearn:digits|breast_cancer|wine|iris|diabetes`` (built in, no download),
``.npz`` (arrays ``X`` and ``y``) and ``.csv`` (numeric features, a target column;
text columns are one-hot encoded), ``imagefolder:PATH`` and
``torchvision:MNIST|FashionMNIST|CIFAR10`` (``objectives.images``). Images are
``(N, C, H, W)``; tables ``(N, F)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from objectives.dataset import Dataset
from tuner.errors import DataError

__all__ = ["load_dataset"]

BUILTIN = ("digits", "breast_cancer", "wine", "iris", "diabetes")
MAX_ONE_HOT_LEVELS = 50


def load_dataset(
    source: str,
    *,
    base_dir: Path = Path("."),
    target: str | None = None,
    image_size: int | list[int] | tuple[int, int] | None = None,
    root: str | None = None,
    download: bool = False,
    cache_limit_mb: int | None = None,
    task: str = "classification",
    cache: str = "auto",
    cache_dir: Path | None = None,
) -> Dataset:
    """Load ``source`` (see the module docstring; image sources: ``objectives.images``).

    Raises:
        DataError: naming the file and what is wrong with it.
    """
    if source.startswith("sklearn:"):
        return _sklearn(source.split(":", 1)[1], task)
    if source.startswith(("imagefolder:", "torchvision:")):
        from objectives import images

        kind, _, rest = source.partition(":")
        size = images.parse_image_size(image_size)
        limit = cache_limit_mb or images.DEFAULT_CACHE_LIMIT_MB
        if kind == "torchvision":
            where = Path(root or "data").expanduser()
            where = where if where.is_absolute() else base_dir / where
            return images.load_torchvision(
                rest, source, root=where, download=download, image_size=size, cache_limit_mb=limit
            )
        folder = Path(rest).expanduser()
        folder = folder if folder.is_absolute() else base_dir / folder
        return images.load_imagefolder(
            folder, source, image_size=size, cache_limit_mb=limit, cache=cache, cache_dir=cache_dir
        )
    path = Path(source).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.is_dir():
        raise DataError(
            f"data.source {source!r} is a folder ({path}), not a data file: give a .csv or .npz "
            "file, or imagefolder:PATH for a folder of images by class"
        )
    if not path.is_file():
        raise DataError(f"data file {path} does not exist (data.source: {source})")
    if path.suffix.lower() == ".npz":
        return _npz(path, task)
    return _csv(path, target or "", task)


def _regression(
    X: np.ndarray, y: Any, source: str, feature_names: list[str] | None = None, where: str | None = None
) -> Dataset:
    """A regression dataset: the target as float64 numbers, NaN/inf kept for the
    pre-flight checks to name (``tuner.run.target_checks``)."""
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.bool_):
        raise DataError(
            f"{where or source}: task: regression needs a numeric target, but it holds {y.dtype} values "
            "(text?); use task: classification, or encode the target as numbers"
        )
    return Dataset(
        X=X.astype(np.float32),
        y=y.astype(np.float64),
        classes=[],
        source=source,
        feature_names=feature_names or [],
        task="regression",
    )


def _sklearn(name: str, task: str) -> Dataset:
    import sklearn.datasets as ds

    if name not in BUILTIN:
        raise DataError(f"unknown built-in dataset sklearn:{name}; choose from {BUILTIN}")
    bunch = getattr(ds, f"load_{name}")()
    X = np.asarray(bunch.data, dtype=np.float32)
    if name == "digits":
        X = X.reshape(-1, 1, 8, 8)  # an image, so the cnn family applies
    feats = [str(f) for f in getattr(bunch, "feature_names", [])]
    if task == "regression":
        return _regression(X, bunch.target, f"sklearn:{name}", feats)
    if name == "diabetes":
        raise DataError("sklearn:diabetes is a regression dataset (a disease measure): add task: regression")
    names = [str(n) for n in getattr(bunch, "target_names", [])]
    y = np.asarray(bunch.target, dtype=np.int64)
    return Dataset(X=X, y=y, classes=names, source=f"sklearn:{name}", feature_names=feats)


def _npz(path: Path, task: str) -> Dataset:
    import zipfile

    if not zipfile.is_zipfile(path):
        # np.load would try it as a pickle and suggest allow_pickle: never for data files.
        raise DataError(
            f"{path} is not an .npz archive (not a zip file): save it with "
            "np.savez(path, X=features, y=labels), or give a .csv"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in ("X", "y") if k not in f.files]
            if missing:
                raise DataError(
                    f"{path} has no array {missing[0]!r} (it holds: {', '.join(f.files) or 'nothing'}); "
                    "save it with np.savez(path, X=features, y=labels)"
                )
            X, y = f["X"], f["y"]
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"cannot read {path} as .npz: {e}") from None
    if X.ndim not in (2, 3, 4) or len(X) != len(y) or y.ndim != 1:
        raise DataError(
            f"{path}: X must be (N, features), (N, H, W) or (N, C, H, W) and y (N,), "
            f"got X{X.shape} and y{y.shape}"
        )
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if X.ndim == 3:
        X = X[:, None]
    if task == "regression":
        return _regression(X, y, str(path))
    y_int = _integer_labels(y, str(path))
    n = int(y_int.max()) + 1 if len(y_int) else 0
    notes = (_whole_floats(y_int, f"{path}: y"),) if np.issubdtype(y.dtype, np.floating) else ()
    return Dataset(
        X=X.astype(np.float32), y=y_int, classes=[str(i) for i in range(n)], source=str(path), notes=notes
    )


def _whole_floats(labels: np.ndarray, what: str) -> str:
    lo, hi = (int(labels.min()), int(labels.max())) if len(labels) else (0, 0)
    return (
        f"{what} holds floats that are whole numbers ({lo:.1f} ... {hi:.1f}); read as the "
        f"integer classes {lo} ... {hi}"
    )


def _integer_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Labels must already be integers 0..C-1 (anything else hides a pipeline bug)."""
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating)):
        raise DataError(f"{where}: labels must be integers 0..C-1, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where}: labels must be integers 0..C-1, but y[{i}] = {y[i].item()!r} "
                f"({int(bad.sum())} such labels); if y holds numbers to predict, add task: regression"
            )
    yi = y.astype(np.int64)
    if len(yi) and yi.min() < 0:
        i = int(np.argmin(yi))
        raise DataError(f"{where}: labels must be integers 0..C-1, but y[{i}] = {yi[i]}")
    return yi


def _csv(path: Path, target: str, task: str) -> Dataset:
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except pd.errors.ParserError as e:
        raise DataError(f"{path} is not a well-formed CSV file (ragged rows?): {e}") from None
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot read {path} as CSV: {e}") from None
    if target not in df.columns:
        raise DataError(
            f"{path} has no column {target!r} for data.target (columns: {', '.join(map(str, df.columns))})"
        )
    labels = df.pop(target)
    X, names = _csv_features(df, path, target)
    if task == "regression":
        return _regression(X, labels.to_numpy(), str(path), names, f"{path}: column {target!r}")
    if labels.isna().any():
        raise DataError(f"{path}: column {target!r} has {int(labels.isna().sum())} empty labels")
    y, classes, notes = _csv_labels(labels, f"{path}: column {target!r}")
    return Dataset(X=X, y=y, classes=classes, source=str(path), feature_names=names, notes=notes)


def _csv_features(df: Any, path: Path, target: str) -> tuple[np.ndarray, list[str]]:
    """The feature columns as float32 (text one-hot encoded) and their names."""
    import pandas as pd

    parts, names = [], []
    for col in df.columns:
        s = df[col]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
            parts.append(s.to_numpy(np.float32)[:, None])
            names.append(str(col))
            continue
        numeric = pd.to_numeric(s, errors="coerce")
        parsed = numeric.notna() | s.isna()
        if parsed.mean() >= 0.9:  # a numeric column with a few stray words in it
            row = int(np.flatnonzero(~parsed.to_numpy())[0])
            raise DataError(
                f"{path}: column {col!r} is numeric but row {row + 2} holds {s.iloc[row]!r}; "
                "fix or remove that value"
            )
        levels = s.astype(str).unique()
        if len(levels) > MAX_ONE_HOT_LEVELS:
            raise DataError(
                f"{path}: text column {col!r} has {len(levels)} distinct values, too many to "
                f"one-hot encode (limit {MAX_ONE_HOT_LEVELS}); drop it or encode it yourself"
            )
        dummies = pd.get_dummies(s.astype(str), prefix=str(col), dtype=np.float32)
        parts.append(dummies.to_numpy())
        names.extend(map(str, dummies.columns))
    if not parts:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    return np.concatenate(parts, axis=1).astype(np.float32), names


def _csv_labels(labels: Any, what: str) -> tuple[np.ndarray, list[str], tuple[str, ...]]:
    """Class codes 0..C-1, class names and notes for a CSV target column. Numbers are
    ordered as numbers (2 before 10); floats that are whole numbers name their classes
    as integers ("3", not "3.0"), and say so once; text is ordered as text."""
    import pandas as pd

    values = labels.to_numpy()
    if pd.api.types.is_bool_dtype(labels) or not pd.api.types.is_numeric_dtype(labels):
        classes, y = np.unique(labels.astype(str).to_numpy(), return_inverse=True)
        return y.astype(np.int64), [str(c) for c in classes], ()
    notes: tuple[str, ...] = ()
    whole = np.isfinite(values) & (values == np.round(values))
    if np.issubdtype(values.dtype, np.floating) and bool(whole.all()):
        values = values.astype(np.int64)
        notes = (_whole_floats(values, what),)
    classes, y = np.unique(values, return_inverse=True)
    return y.astype(np.int64), [str(c.item()) for c in classes], notes
