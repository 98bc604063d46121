"""Property-based: malformed and adversarial study files are refused cleanly.

Hypothesis generates study files in every category of issue #9 (wrong types,
missing and unknown keys, negative budgets, empty spaces, low > high, log with
low <= 0, conditions on undefined parameters, unknown sampler/pruner names and
arguments, unreadable data paths, YAML that is not a mapping, huge numbers,
unicode, and a few YAML attacks). Each goes through the real CLI entry point,
in-process for speed (a few also as subprocesses), and must give exit status 2,
a one-line ``tune: error:`` message naming the key path (or the file), no
traceback, and create nothing: no storage file, no MLflow store or artifacts.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuner.cli import main

N_EXAMPLES = 300
SEEN: Counter[str] = Counter()
PASSED: Counter[str] = Counter()


def base_doc() -> dict[str, Any]:
    """A valid, tiny study; every case breaks exactly one thing in it."""
    return {
        "name": "fuzz",
        "seed": 0,
        "objective": {"metric": "balanced_accuracy"},
        "data": {"source": "sklearn:iris", "test_size": 0.2, "folds": 2},
        "model": {"family": "mlp"},
        "training": {"max_epochs": 1, "batch_size": 32, "threads": 1},
        "search_space": {
            "lr": {"float": [1.0e-3, 1.0e-1], "log": True},
            "optimizer": {"categorical": ["adamw", "sgd"]},
            "momentum": {"float": [0.8, 0.95], "when": {"optimizer": "sgd"}},
        },
        "budget": {"n_trials": 1, "max_consecutive_failures": 2},
        "sampler": {"name": "RandomSampler"},
        "pruner": {"name": "MedianPruner"},
        "fold_pruning": {"enabled": False},
        "mlflow": {"log_model": False},
    }


@dataclass
class Case:
    category: str
    text: str  # the study file
    expect: list[str]  # the message names at least one of these
    files: dict[str, bytes] = field(default_factory=dict)  # data files beside the study
    dirs: list[str] = field(default_factory=list)


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return doc


def _delete(doc: dict[str, Any], dotted: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    del node[leaf]
    return doc


def _case(category: str, doc: Any, *expect: str, **kw: Any) -> Case:
    return Case(category, _dump(doc), list(expect), **kw)


# ------------------------------------------------------------------- strategies

WRONG_TYPES: dict[str, list[Any]] = {
    "name": [[1, 2], {"a": 1}, 3.5, True, "", "has space", "-dash-first"],
    "seed": ["abc", -1, 1.5, [1], {"x": 1}],
    "objective.metric": ["auc", 3, ["accuracy"], None],
    "data.source": [5, "", "data.txt", "sklearn:nope", [], "torchvision:ImageNet"],
    "data.folds": ["five", 1, 0, 1.5, 51, [2]],
    "data.test_size": [0, 1, -0.1, "x", 1.5],
    "data.normalize": ["perhaps", [True], 2],
    "model.family": ["transformer", 1, None],
    "training.max_epochs": [0, "x", -3, 2.5],
    "training.batch_size": [0, 1 << 20, "big"],
    "training.device": ["gpu", "cuda:x", 7, "CUDA"],
    "training.threads": [0, -2, "all"],
    "budget.timeout": [-1, "abc", "0s", [1], True, "5 parsecs"],
    "fold_pruning.margin": [-1, "wide"],
    "fold_pruning.enabled": ["sometimes"],
    "divergence.patience": [0, -5, "x"],
    "divergence.grad_norm_factor": [1, 0.5, "x"],
    "mlflow.enabled": ["maybe", [1]],
    "mlflow.experiment": ["", 5],
    "storage": ["ftp://host/db", 5, "mongodb://x/y", ["sqlite:///a.db"]],
    "sampler": [5, "TPESampler", [1]],
    "pruner": [5, "MedianPruner", [1]],
    "search_space": [5, ["lr"], "no-such-preset", True],
}
MISSING = ["name", "data", "search_space", "data.source"]
SECTIONS = ["", "data", "training", "budget", "objective", "model", "fold_pruning", "divergence", "mlflow"]
KNOWN_KEYS = {
    k for section in (base_doc(), *(v for v in base_doc().values() if isinstance(v, dict))) for k in section
} | {"target", "normalize", "device", "timeout", "enabled", "tracking_uri", "experiment", "storage"}

key_text = st.text(
    alphabet=st.characters(categories=["L", "N", "So"], exclude_characters="\x85"),
    min_size=1,
    max_size=12,
).filter(lambda k: k.lower() not in {x.lower() for x in KNOWN_KEYS} and not k.isdigit())
HUGE = [10**20, 10**100, -(10**30), 1.0e308, 2**63, 2**64 + 1]


@st.composite
def wrong_type(draw: st.DrawFn) -> Case:
    path = draw(st.sampled_from(sorted(WRONG_TYPES)))
    value = draw(st.sampled_from(WRONG_TYPES[path]))
    return _case("wrong type", _set(base_doc(), path, value), path)


@st.composite
def missing_key(draw: st.DrawFn) -> Case:
    path = draw(st.sampled_from(MISSING))
    return _case("missing key", _delete(base_doc(), path), path)


@st.composite
def unknown_key(draw: st.DrawFn) -> Case:
    section = draw(st.sampled_from(SECTIONS))
    key = draw(key_text)
    path = f"{section}.{key}" if section else key
    value = draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans()))
    return _case("unknown key", _set(base_doc(), path, value), path)


@st.composite
def negative_budget(draw: st.DrawFn) -> Case:
    path = draw(st.sampled_from(["budget.n_trials", "budget.max_consecutive_failures", "budget.timeout"]))
    value = draw(st.one_of(st.integers(max_value=0), st.floats(max_value=0, allow_nan=False)))
    return _case("negative budget", _set(base_doc(), path, value), path)


@st.composite
def empty_space(draw: st.DrawFn) -> Case:
    how = draw(st.sampled_from(["empty mapping", "empty spec", "empty categorical", "null"]))
    space: Any = {
        "empty mapping": {},
        "empty spec": {"lr": {}},
        "empty categorical": {"optimizer": {"categorical": []}},
        "null": None,
    }[how]
    return _case("empty search space", _set(base_doc(), "search_space", space), "search_space")


@st.composite
def low_above_high(draw: st.DrawFn) -> Case:
    kind, name = draw(st.sampled_from([("float", "lr"), ("float", "dropout"), ("int", "width")]))
    if kind == "float":
        low = draw(st.floats(min_value=1e-3, max_value=0.9, allow_nan=False))
        high = draw(st.floats(min_value=1e-4, max_value=low, exclude_max=True, allow_nan=False))
    else:
        low = draw(st.integers(min_value=2, max_value=512))
        high = draw(st.integers(min_value=1, max_value=low - 1))
    return _case(
        "low > high", _set(base_doc(), f"search_space.{name}", {kind: [low, high]}), f"search_space.{name}"
    )


@st.composite
def log_nonpositive(draw: st.DrawFn) -> Case:
    low = draw(st.floats(max_value=0, allow_nan=False, allow_infinity=False))
    spec = {"float": [low, 0.5], "log": True}
    return _case(
        "log low <= 0", _set(base_doc(), "search_space.weight_decay", spec), "search_space.weight_decay"
    )


@st.composite
def undefined_condition(draw: st.DrawFn) -> Case:
    parent = draw(st.sampled_from(["optimiser", "batchnorm", "nope", "lr", "momentum", "Optimizer"]))
    value = draw(st.sampled_from(["sgd", "adamw", "x", 1]))
    doc = _set(base_doc(), "search_space.momentum.when", {parent: value})
    return _case("condition on undefined parameter", doc, "search_space", "momentum")


@st.composite
def bad_sampler_pruner(draw: st.DrawFn) -> Case:
    which = draw(st.sampled_from(["sampler", "pruner"]))
    how = draw(st.sampled_from(["name", "argument", "argument value", "wrapped"]))
    names = {
        "sampler": ["TPESamplr", "GridSampler", "os.system", "optuna.samplers.TPESampler", ""],
        "pruner": ["MedianPrunner", "optuna.pruners.WilcoxonPruner", "builtins:eval", "Hyperband", ""],
    }
    if how == "name":
        spec = {"name": draw(st.sampled_from(names[which]))}
    elif how == "argument":
        spec = {"name": "RandomSampler" if which == "sampler" else "MedianPruner", draw(key_text): 1}
    elif how == "argument value":
        spec = (
            {"name": "TPESampler", "n_startup_trials": "many"}
            if which == "sampler"
            else {"name": "PercentilePruner", "percentile": draw(st.sampled_from([-5, 150, "x"]))}
        )
    else:
        spec = (
            {
                "name": "PatientPruner",
                "patience": 1,
                "wrapped": draw(st.sampled_from([None, "MedianPruner", {"name": "Nope"}])),
            }
            if which == "pruner"
            else {"name": "TPESampler", "seed": "abc"}
        )
        which = "pruner" if "wrapped" in spec else which
    return _case("unknown sampler/pruner", _set(base_doc(), which, spec), which)


@st.composite
def unreadable_data(draw: st.DrawFn) -> Case:
    how = draw(
        st.sampled_from(
            [
                "missing csv",
                "missing npz",
                "directory",
                "empty csv",
                "binary csv",
                "garbage npz",
                "npz without y",
                "ragged csv",
                "text in numeric column",
                "missing target column",
                "nested missing dir",
                "unicode path",
            ]
        )
    )
    stem = draw(st.text(alphabet="abcxyz_", min_size=1, max_size=6))
    doc = base_doc()
    files: dict[str, bytes] = {}
    dirs: list[str] = []
    if how == "missing csv":
        name = f"{stem}.csv"
    elif how == "missing npz":
        name = f"{stem}.npz"
    elif how == "nested missing dir":
        name = f"no/such/{stem}.npz"
    elif how == "unicode path":
        name = f"données_{stem}_数据.csv"
    elif how == "directory":
        name = f"{stem}.csv"
        dirs.append(name)
    else:
        name = f"{stem}.npz" if "npz" in how else f"{stem}.csv"
        buf = io.BytesIO()
        if how == "empty csv":
            files[name] = b""
        elif how == "binary csv":
            files[name] = bytes(draw(st.binary(min_size=8, max_size=64))) + b"\xff\xfe\x00\x81"
        elif how == "garbage npz":
            files[name] = draw(st.binary(min_size=0, max_size=64))
        elif how == "npz without y":
            np.savez(buf, X=np.zeros((20, 3), np.float32), labels=np.zeros(20))
            files[name] = buf.getvalue()
        elif how == "ragged csv":
            files[name] = b"a,b,y\n1,2,0\n3,4,1,9,9\n5,6,0\n"
        elif how == "text in numeric column":
            rows = "".join(f"{i},{i * 2},{i % 2}\n" for i in range(30))
            files[name] = f"a,b,y\n{rows}oops,1,0\n".encode()
        elif how == "missing target column":
            files[name] = b"a,b,label\n1,2,0\n3,4,1\n"
    doc = _set(doc, "data.source", name)
    if name.endswith(".csv"):
        doc = _set(doc, "data.target", "y")
    return _case("unreadable data path", doc, "data.source", Path(name).name, files=files, dirs=dirs)


FAULT_KINDS = [
    "bool budget",
    "step wider than range",
    "blank experiment",
    "data folder",
    "npz not a zip",
    "null section",
    "in-memory storage",
    "two-slash url",
    "huge study file",
    "unreachable database",
]


@st.composite
def faults_inputs(draw: st.DrawFn, kinds: list[str] = FAULT_KINDS) -> Case:
    """The inputs issue #19 found accepted or answered without a fix: each must now be
    refused with a message that says what to do."""
    how = draw(st.sampled_from(kinds))
    doc = base_doc()
    stem = draw(st.text(alphabet="abcxyz", min_size=1, max_size=6))
    if how == "bool budget":
        key = draw(st.sampled_from(["budget.n_trials", "data.folds", "training.max_epochs", "seed"]))
        return _case("issue 19 inputs", _set(doc, key, draw(st.booleans())), f"{key}: must be a number")
    if how == "step wider than range":
        low = draw(st.integers(min_value=1, max_value=100))
        span = draw(st.integers(min_value=1, max_value=50))
        step = draw(st.integers(min_value=span + 1, max_value=span + 200))
        spec = {"int": [low, low + span], "step": step}
        doc = _set(doc, "search_space.width", spec)
        return _case("issue 19 inputs", doc, "wider than the range")
    if how == "blank experiment":
        name = draw(st.sampled_from(["   ", " x", "x ", "\t", " fuzz "]))
        return _case("issue 19 inputs", _set(doc, "mlflow.experiment", name), "blank space")
    if how == "data folder":
        name = f"{stem}.{draw(st.sampled_from(['npz', 'csv']))}"
        doc = _set(_set(doc, "data.source", name), "data.target", "y")
        return _case("issue 19 inputs", doc, "is a folder", dirs=[name])
    if how == "npz not a zip":
        data = draw(st.binary(min_size=0, max_size=256).filter(lambda b: not b.startswith(b"PK")))
        name = f"{stem}.npz"
        return _case(
            "issue 19 inputs", _set(doc, "data.source", name), "not an .npz archive", files={name: data}
        )
    if how == "null section":
        key = draw(st.sampled_from(["data", "training", "budget", "model", "objective"]))
        return _case("issue 19 inputs", _set(doc, key, None), "must be a mapping")
    if how == "in-memory storage":
        url = draw(
            st.sampled_from(["sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&mode=memory"])
        )
        return _case("issue 19 inputs", _set(doc, "storage", url), "in-memory storage")
    if how == "two-slash url":
        url = draw(st.sampled_from(["sqlite", "journal"])) + f"://{stem}.db"
        return _case("issue 19 inputs", _set(doc, "storage", url), "lacks a slash")
    if how == "huge study file":
        mb = draw(st.floats(min_value=1.01, max_value=3.0))
        text = _dump(doc) + "# " + "x" * int(mb * 1_000_000) + "\n"
        return Case("issue 19 inputs", text, ["MB limit"])
    port = draw(st.sampled_from([1, 9, 5433]))
    url = f"postgresql://postgres@127.0.0.1:{port}/tuner_fuzz"
    return _case("issue 19 inputs", _set(doc, "storage", url), "cannot open the study storage")


@st.composite
def not_a_mapping(draw: st.DrawFn) -> Case:
    text = draw(
        st.sampled_from(
            [
                "",
                "---\n",
                "- name: x\n",
                "just a string\n",
                "42\n",
                "~\n",
                "[1, 2, 3]\n",
                "'quoted'\n",
                "true\n",
                "!!binary aGVsbG8=\n",
            ]
        )
    )
    return Case("YAML not a mapping", text, ["study.yaml must be a YAML mapping"])


@st.composite
def huge_number(draw: st.DrawFn) -> Case:
    path = draw(
        st.sampled_from(
            [
                "seed",
                "budget.n_trials",
                "data.folds",
                "training.max_epochs",
                "training.batch_size",
                "budget.max_consecutive_failures",
                "budget.timeout",
                "divergence.patience",
            ]
        )
    )
    value = draw(st.sampled_from(HUGE))
    if path == "budget.timeout" and value > 0:
        value = "9" * 400 + "h"  # overflows to inf seconds
    return _case("huge number", _set(base_doc(), path, value), path)


@st.composite
def huge_range(draw: st.DrawFn) -> Case:
    name = draw(st.sampled_from(["lr", "width", "dropout"]))
    bound = draw(st.sampled_from([".inf", "-.inf", ".nan", "1e400", "1e309"]))
    kind = "int" if name == "width" else "float"
    text = _dump(_set(base_doc(), f"search_space.{name}", {kind: [1, 2]})).replace(
        f"{kind}:\n    - 1\n    - 2", f"{kind}: [1, {bound}]"
    )
    return Case("huge number", text, [f"search_space.{name}"])


@st.composite
def unicode_case(draw: st.DrawFn) -> Case:
    weird = draw(
        st.text(alphabet=st.characters(categories=["L", "So", "Mn"]), min_size=1, max_size=10).filter(
            lambda s: not s.isascii()
        )
    )
    how = draw(st.sampled_from(["name", "param", "choice", "metric", "family"]))
    if how == "name":
        return _case("unicode", _set(base_doc(), "name", weird), "name")
    if how == "param":
        return _case(
            "unicode", _set(base_doc(), f"search_space.{weird}", {"float": [0, 1]}), f"search_space.{weird}"
        )
    if how == "choice":
        return _case(
            "unicode",
            _set(base_doc(), "search_space.optimizer", {"categorical": ["sgd", weird]}),
            "search_space.optimizer",
        )
    if how == "metric":
        return _case("unicode", _set(base_doc(), "objective.metric", weird), "objective.metric")
    return _case("unicode", _set(base_doc(), "model.family", weird), "model.family")


@st.composite
def yaml_attack(draw: st.DrawFn) -> Case:
    how = draw(
        st.sampled_from(
            [
                "python tag",
                "python name",
                "duplicate key",
                "alias bomb",
                "recursive alias",
                "invalid yaml",
                "tab indent",
                "missing env",
                "deep nesting",
            ]
        )
    )
    valid = _dump(base_doc())
    if how == "python tag":
        return Case(
            "YAML attack",
            "name: !!python/object/apply:os.system ['touch pwned']\n" + valid[valid.index("seed") :],
            ["!!python"],
        )
    if how == "python name":
        return Case("YAML attack", valid + "extra: !!python/name:os.system\n", ["!!python"])
    if how == "duplicate key":
        key = draw(st.sampled_from(["name", "seed", "budget"]))
        dup = {"name": "name: other\n", "seed": "seed: 1\n", "budget": "budget: {n_trials: 2}\n"}[key]
        return Case("YAML attack", valid + dup, [f"duplicate key {key!r}"])
    if how == "alias bomb":
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 9):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
        return Case(
            "YAML attack",
            valid + "pruner_extra:\n" + "".join(f"  {ln}\n" for ln in lines),
            ["expands to more than"],
        )
    if how == "recursive alias":
        return Case(
            "YAML attack",
            valid.replace(
                "sampler:\n  name: RandomSampler", "sampler: &s\n  name: RandomSampler\n  self: *s"
            ),
            ["sampler"],
        )
    if how == "invalid yaml":
        return Case("YAML attack", valid + "budget: {n_trials: 3\n", ["study.yaml is not valid YAML"])
    if how == "tab indent":
        return Case("YAML attack", valid + "data:\n\tfolds: 3\n", ["study.yaml is not valid YAML"])
    if how == "deep nesting":
        depth = draw(st.integers(min_value=70, max_value=400))
        return Case("YAML attack", valid + "deep: " + "[" * depth + "]" * depth + "\n", ["deep"])
    var = "TUNER_FUZZ_" + draw(st.text(alphabet="ABCXYZ", min_size=3, max_size=8))
    return Case("YAML attack", valid.replace("name: fuzz", f"name: ${{{var}}}"), ["name", var])


CATEGORIES = {
    "wrong type": wrong_type(),
    "missing key": missing_key(),
    "unknown key": unknown_key(),
    "negative budget": negative_budget(),
    "empty search space": empty_space(),
    "low > high": low_above_high(),
    "log low <= 0": log_nonpositive(),
    "condition on undefined parameter": undefined_condition(),
    "unknown sampler/pruner": bad_sampler_pruner(),
    "unreadable data path": unreadable_data(),
    "YAML not a mapping": not_a_mapping(),
    "huge number": st.one_of(huge_number(), huge_range()),
    "unicode": unicode_case(),
    "YAML attack": yaml_attack(),
    "issue 19 inputs": faults_inputs(),
}
# wrong types span the most keys: draw them twice as often
cases = st.one_of(CATEGORIES["wrong type"], *CATEGORIES.values())


# ---------------------------------------------------------------------- running


@contextlib.contextmanager
def _in_dir(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _norm(text: str) -> str:
    return " ".join(text.split())


def run_case(case: Case, root: Path) -> tuple[int, str, str]:
    for d in case.dirs:
        (root / d).mkdir(parents=True)
    for name, data in case.files.items():
        (root / name).write_bytes(data)
    (root / "study.yaml").write_text(case.text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with _in_dir(root), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["study.yaml"])
    return code, out.getvalue(), err.getvalue()


def check_refused(case: Case, code: int, out: str, err: str, root: Path) -> None:
    assert code == 2, f"exit {code} for {case.category}: {case.text[:300]!r}\nstdout: {out[-500:]}"
    assert "Traceback" not in out + err
    assert out == "", f"nothing should be printed on stdout, got {out!r}"
    assert err.startswith("tune: error: ") and err.endswith("\n")
    message = err[len("tune: error: ") : -1]
    assert "\n" not in message, f"not one paragraph: {err!r}"
    assert any(_norm(e) in message for e in case.expect), (
        f"{case.category}: message names none of {case.expect}: {message}"
    )
    expected = {"study.yaml", *(Path(n).parts[0] for n in [*case.files, *case.dirs])}
    left = {p.name for p in root.iterdir()}
    assert left == expected, f"{case.category} created {sorted(left - expected)}"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def test_the_base_study_is_valid(tmp_path):
    from tuner.config import load_config

    (tmp_path / "study.yaml").write_text(_dump(base_doc()))
    config = load_config(tmp_path / "study.yaml")
    assert config.name == "fuzz" and config.search_space.names == ["lr", "optimizer", "momentum"]


@settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)
@given(case=cases)
def test_malformed_study_is_refused_cleanly(case: Case) -> None:
    SEEN[case.category] += 1
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        code, out, err = run_case(case, root)
        check_refused(case, code, out, err, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    PASSED[case.category] += 1


def test_every_category_was_generated() -> None:
    if not SEEN:
        pytest.skip("run together with test_malformed_study_is_refused_cleanly")
    counts = ", ".join(f"{k}: {PASSED[k]}/{SEEN[k]}" for k in CATEGORIES)
    print(
        f"\nmalformed study files tried {sum(SEEN.values())}, refused cleanly "
        f"{sum(PASSED.values())} ({counts})"
    )
    assert set(SEEN) == set(CATEGORIES), f"never generated: {set(CATEGORIES) - set(SEEN)}"
    assert sum(SEEN.values()) >= 200


@pytest.mark.parametrize("kind", FAULT_KINDS)
@settings(
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_each_input_of_issue_19_is_refused_with_its_fix(kind: str, data: st.DataObject) -> None:
    case = data.draw(faults_inputs(kinds=[kind]))
    root = Path(tempfile.mkdtemp(prefix="fuzz19-"))
    try:
        code, out, err = run_case(case, root)
        check_refused(case, code, out, err, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


SUBPROCESS_CASES = [
    Case("wrong type", _dump(_set(base_doc(), "data.folds", "five")), ["data.folds"]),
    Case("YAML attack", "name: !!python/object/apply:os.system ['touch pwned']\n", ["!!python"]),
    Case(
        "unreadable data path",
        _dump(_set(_set(base_doc(), "data.source", "gone.csv"), "data.target", "y")),
        ["data.source"],
    ),
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=lambda c: c.category)
def test_refused_by_the_real_command(case: Case, tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(case.text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("TUNER_STORAGE", "MLFLOW_TRACKING_URI")}
    proc = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "study.yaml"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    check_refused(case, proc.returncode, proc.stdout, proc.stderr, tmp_path)
