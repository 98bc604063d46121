"""task: regression without a study: the config keys, the splits, the target scale
fitted on training rows only, the metrics against scikit-learn's, loading and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from objectives.data import load_dataset
from objectives.metrics import DIRECTION, score
from objectives.splits import make_splits, quantile_bins
from objectives.task import REGRESSION, TargetScale
from tests.conftest import regression_study, tiny_study
from tuner.config import StudyConfig
from tuner.errors import DataError


def test_regression_defaults_to_rmse_minimized_and_r2_is_maximized():
    cfg = StudyConfig.model_validate(regression_study())
    assert (cfg.task, cfg.objective.metric, cfg.direction) == ("regression", "rmse", "minimize")
    cfg = StudyConfig.model_validate(regression_study(**{"objective.metric": "r2"}))
    assert cfg.direction == "maximize"
    assert DIRECTION["mae"] == DIRECTION["mape"] == "minimize"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (tiny_study(**{"objective.metric": "rmse"}), "objective.metric rmse needs task: regression"),
        (
            tiny_study(**{"data.target_transform": "log1p"}),
            "data.target_transform applies to task: regression",
        ),
        (tiny_study(**{"training.loss": "huber"}), "training.loss applies to task: regression"),
        (tiny_study(**{"data.split": "kfold"}), "data.split kfold applies to task: regression"),
        (tiny_study(**{"search_space.loss": {"categorical": ["mse", "mae"]}}), "search_space.loss chooses"),
        (tiny_study(**{"data.source": "sklearn:diabetes"}), "sklearn:diabetes is a regression dataset"),
        (regression_study(**{"objective.metric": "balanced_accuracy"}), "is a classification metric"),
        (regression_study(**{"data.split": "stratified"}), "for task: regression use kfold"),
        (
            regression_study(**{"search_space.class_weight": {"categorical": ["none", "balanced"]}}),
            "search_space.class_weight only applies to classification",
        ),
        (regression_study(**{"data.source": "imagefolder:photos"}), "needs a numeric target"),
        (regression_study(**{"data.target_transform": "sqrt"}), "target_transform"),
        (regression_study(**{"training.loss": "hinge"}), "training.loss"),
        (regression_study(**{"search_space.loss": {"categorical": ["mse", "l2"]}}), "loss must be one of"),
    ],
)
def test_keys_that_do_not_fit_the_task_are_refused_with_the_fix(doc, message):
    with pytest.raises(ValueError, match=message):
        StudyConfig.model_validate(doc)


def test_a_searched_loss_and_the_regression_keys_load():
    cfg = StudyConfig.model_validate(
        regression_study(
            **{
                "data.target_transform": "log1p",
                "data.split": "kfold",
                "training.loss": "mae",
                "search_space.loss": {"categorical": ["mse", "huber", "mae"]},
            }
        )
    )
    assert (cfg.data.target_transform, cfg.data.split, cfg.training.loss) == ("log1p", "kfold", "mae")


@pytest.fixture(scope="module")
def diabetes():
    return load_dataset("sklearn:diabetes", task="regression")


@pytest.mark.parametrize("split", ["quantile", "kfold"])
def test_splits_are_disjoint_cover_everything_and_reproduce(diabetes, split):
    y = diabetes.y
    a = make_splits(y, test_size=0.2, folds=5, seed=0, task="regression", split=split)
    b = make_splits(y, test_size=0.2, folds=5, seed=0, task="regression", split=split)
    c = make_splits(y, test_size=0.2, folds=5, seed=1, task="regression", split=split)
    assert not set(a.test) & set(a.trainval)
    assert sorted([*a.test, *a.trainval]) == list(range(len(y)))
    vals = np.concatenate([va for _, va in a.folds])
    assert sorted(vals) == sorted(a.trainval)  # every non-test row validates exactly once
    for tr, va in a.folds:
        assert not set(tr) & set(va) and not set(tr) & set(a.test)
    assert a.fingerprint("d") == b.fingerprint("d") != c.fingerprint("d")


def test_quantile_bins_put_every_decile_in_every_fold_and_the_test_split(diabetes):
    y = diabetes.y
    s = make_splits(y, test_size=0.2, folds=5, seed=0, task="regression", split="quantile")
    bins = quantile_bins(y[s.trainval], 10)
    assert len(np.unique(bins)) == 10 and np.bincount(bins).min() >= 30  # ties in y: not exactly 35
    position = {int(row): i for i, row in enumerate(s.trainval)}
    for _, va in s.folds:
        assert len(np.unique(bins[[position[int(r)] for r in va]])) == 10
    test_bins = np.searchsorted(np.quantile(y, np.linspace(0, 1, 11)[1:-1]), y[s.test], side="right")
    assert len(np.unique(test_bins)) == 10
    # the folds' mean targets agree far better than plain K-fold's on the same data
    kf = make_splits(y, test_size=0.2, folds=5, seed=0, task="regression", split="kfold")
    spread = [np.std([y[va].mean() for _, va in sp.folds]) for sp in (s, kf)]
    assert spread[0] < spread[1] / 2


def test_too_few_rows_for_the_folds_is_a_clear_error():
    with pytest.raises(DataError, match="lower data.folds"):
        make_splits(np.arange(6.0), test_size=0.5, folds=5, seed=0, task="regression")


def test_the_target_scale_is_fitted_on_the_fold_training_rows_only(diabetes):
    """The network in a fold learns its target standardized with that fold's training
    rows' statistics: not the whole data's, which would leak the validation rows."""
    from objectives.fold import train_fold
    from objectives.guard import DivergenceGuard
    from objectives.models import ModelSpec, input_stats
    from search_spaces.params import HParams

    cfg = StudyConfig.model_validate(regression_study(**{"training.max_epochs": 1}))
    s = make_splits(diabetes.y, test_size=0.2, folds=2, seed=0, task="regression")
    tr, va = s.folds[0]
    # a fold whose training rows lean high: their mean must be the one the model keeps
    tr = tr[diabetes.y[tr] > np.median(diabetes.y[tr])]
    mean, std = input_stats(diabetes.X[tr], True)
    seen = []
    model = train_fold(
        cfg, ModelSpec("mlp", (10,), 1), {}, HParams.resolve({}, 32), torch.as_tensor(diabetes.X[tr]),
        torch.as_tensor(diabetes.y[tr]), mean=mean, std=std, guard=DivergenceGuard(cfg.divergence),
        fold=0, seed=0, X_val=torch.as_tensor(diabetes.X[va]), y_val=torch.as_tensor(diabetes.y[va]),
        on_epoch=seen.append,
    )  # fmt: skip
    scale = list(model.children())[-1]
    assert isinstance(scale, TargetScale)
    assert float(scale.mean) == pytest.approx(diabetes.y[tr].mean(), rel=1e-6)
    assert float(scale.std) == pytest.approx(diabetes.y[tr].std(), rel=1e-6)
    assert abs(float(scale.mean) - diabetes.y.mean()) > 10  # not the all-data statistics
    (record,) = seen
    pred = REGRESSION.predict(model, torch.as_tensor(diabetes.X[va]))
    assert record.val_score == pytest.approx(skm.root_mean_squared_error(diabetes.y[va], pred), rel=1e-5)
    assert pred.mean() > 100  # in the target's units (25..346), not standardized


@pytest.mark.parametrize("kind", ["none", "standardize", "log1p"])
def test_target_scale_inverts_its_transform(kind):
    y = torch.tensor([25.0, 80.0, 151.0, 346.0])
    scale = TargetScale.fit(kind, y)
    assert torch.allclose(scale(scale.transform(y)), y, rtol=1e-5)
    z = scale.transform(y)
    if kind == "none":
        assert torch.equal(z, y)
    else:
        assert abs(float(z.mean())) < 1e-5 and float(z.std(unbiased=False)) == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("rmse", skm.root_mean_squared_error),
        ("mae", skm.mean_absolute_error),
        ("r2", skm.r2_score),
        ("mape", skm.mean_absolute_percentage_error),
    ],
)
def test_metrics_are_scikit_learns(metric, reference):
    rng = np.random.default_rng(0)
    y = rng.uniform(10, 300, 200)
    pred = y + rng.normal(0, 20, 200)
    assert score(metric, y, pred) == pytest.approx(reference(y, pred))


def test_csv_and_npz_targets_load_as_numbers_and_text_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("a,colour,price\n1,red,10.5\n2,blue,20.25\n3,red,\n")
    ds = load_dataset("t.csv", base_dir=tmp_path, target="price", task="regression")
    assert ds.is_regression and ds.n_outputs == 1 and ds.classes == []
    assert ds.y.dtype == np.float64 and ds.y[:2].tolist() == [10.5, 20.25] and np.isnan(ds.y[2])
    assert ds.feature_names == ["a", "colour_blue", "colour_red"]
    (tmp_path / "s.csv").write_text("a,label\n1,cat\n2,dog\n")
    with pytest.raises(DataError, match="needs a numeric target"):
        load_dataset("s.csv", base_dir=tmp_path, target="label", task="regression")
    np.savez(tmp_path / "d.npz", X=np.ones((4, 3)), y=np.array([0.5, 1.5, 2.5, 3.5]))
    npz = load_dataset("d.npz", base_dir=tmp_path, task="regression")
    assert npz.y.tolist() == [0.5, 1.5, 2.5, 3.5]
    with pytest.raises(DataError, match="add task: regression"):
        load_dataset("d.npz", base_dir=tmp_path, task="classification")
    np.savez(tmp_path / "w.npz", X=np.ones((4, 3)), y=np.array([0, 1, 2, 3]))
    as_numbers = load_dataset("w.npz", base_dir=tmp_path, task="regression")
    assert as_numbers.fingerprint() != load_dataset("w.npz", base_dir=tmp_path).fingerprint()


def test_the_exported_model_predicts_in_the_users_units(tmp_path, diabetes):
    from objectives.export import RefitModel, recipe, save
    from objectives.models import ModelSpec, build_model, input_stats
    from search_spaces.params import HParams

    cfg = StudyConfig.model_validate(regression_study(**{"data.target_transform": "log1p"}))
    hp = HParams.resolve({"width": 16}, 32)
    mean, std = input_stats(diabetes.X, True)
    model = build_model(ModelSpec("mlp", (10,), 1), hp, mean, std, {"width": 16})
    model.append(TargetScale.fit("log1p", diabetes.y))
    X = torch.as_tensor(diabetes.X[:20])
    expected = REGRESSION.predict(model, X)
    save(tmp_path / "m", model, recipe(cfg, diabetes, {"width": 16}, 0))
    loaded = RefitModel.load(tmp_path / "m")
    assert np.allclose(loaded.predict(diabetes.X[:20]), expected, rtol=1e-5)
    assert 10 < float(np.median(expected)) < 1000  # expm1 of the learned scale: the target's units
    with pytest.raises(TypeError, match="use predict"):
        loaded.predict_proba(diabetes.X[:2])
    loaded.fine_tune(diabetes.X[:64], diabetes.y[:64], epochs=1)
    assert np.isfinite(loaded.predict(diabetes.X[:5])).all()


def test_the_divergence_guard_stops_a_regression_fold_whose_loss_explodes(diabetes):
    """An unscaled target (25..346) under SGD with a large learning rate: the squared
    error explodes within the first epoch, and the guard names it."""
    from objectives.fold import train_fold
    from objectives.guard import Diverged, DivergenceGuard
    from objectives.models import ModelSpec, input_stats
    from search_spaces.params import HParams

    cfg = StudyConfig.model_validate(regression_study(**{"data.target_transform": "none"}))
    mean, std = input_stats(diabetes.X, True)
    hp = HParams.resolve({"optimizer": "sgd", "lr": 0.5}, 32)
    with pytest.raises(Diverged, match="loss|norm|non-finite"):
        train_fold(
            cfg, ModelSpec("mlp", (10,), 1), {}, hp, torch.as_tensor(diabetes.X),
            torch.as_tensor(diabetes.y), mean=mean, std=std, guard=DivergenceGuard(cfg.divergence),
            fold=0, seed=0,
        )  # fmt: skip
