"""A password in a storage URL or tracking URI never leaves tuner (issue #9).

A sentinel password rides in a PostgreSQL storage URL (through ``$TUNER_STORAGE``
and through ``${ENV}`` interpolation in the study file) and in a PostgreSQL
tracking URI. The local server trusts every connection, so any password works.
After a real study, everything tuner wrote is searched for the sentinel: its
stdout and stderr, ``tune report``/``status``/``best``, every file under the
study folder (artifacts included), MLflow's experiments, runs, params, tags and
metric names, every artifact's bytes, the study's and trials' attributes in the
storage, and the error messages for unreachable hosts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from tests.conftest import tiny_study

pytestmark = pytest.mark.postgres

SENTINEL = f"Sentinel-{uuid.uuid4().hex[:10]}-pw"
PG = "127.0.0.1:5432"


def _admin() -> Any:
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    except psycopg2.OperationalError as e:
        pytest.skip(f"no PostgreSQL on {PG}: {e}")
    conn.autocommit = True
    return conn


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two throwaway databases: the study storage and the MLflow store."""
    conn = _admin()
    names = (f"tuner_secret_{uuid.uuid4().hex[:10]}", f"tuner_secret_mlflow_{uuid.uuid4().hex[:10]}")
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield names
    finally:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


def _url(db: str, host: str = PG) -> str:
    return f"postgresql://postgres:{SENTINEL}@{host}/{db}"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TUNER_STORAGE", "MLFLOW_TRACKING_URI")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1", **extra)
    return env


def _tune(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuner.cli", *args],
        cwd=tmp_path,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _leaks(text: str) -> bool:
    return SENTINEL in text


def test_no_password_reaches_output_mlflow_storage_or_files(tmp_path: Path, databases) -> None:
    store_db, mlflow_db = databases
    doc = tiny_study(**{"budget.n_trials": 2, "training.max_epochs": 1})
    doc["mlflow"]["tracking_uri"] = "postgresql://postgres:${TUNER_TEST_PG_PASSWORD}@" + f"{PG}/{mlflow_db}"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    password = {"TUNER_TEST_PG_PASSWORD": SENTINEL}

    # 1. the run: storage through $TUNER_STORAGE, tracking URI through ${ENV}
    run = _tune(tmp_path, "study.yaml", TUNER_STORAGE=_url(store_db), **password)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "created study 'tiny' in postgresql at 127.0.0.1:5432" in run.stdout
    outputs = [run.stdout, run.stderr]

    # 2. the views: storage through ${ENV} interpolation in a second study file
    doc["storage"] = "postgresql://postgres:${TUNER_TEST_PG_PASSWORD}@" + f"{PG}/{store_db}"
    (tmp_path / "by-env.yaml").write_text(yaml.safe_dump(doc))
    for args in (
        ["report", "by-env.yaml"],
        ["report", "by-env.yaml", "--json"],
        ["status", "by-env.yaml"],
        ["best", "by-env.yaml"],
    ):
        view = _tune(tmp_path, *args, **password)
        assert view.returncode == 0, (args, view.stderr[-2000:])
        outputs += [view.stdout, view.stderr]
    report = json.loads(outputs[4])
    assert report["counts"]["complete"] == 2 and report["test"] is not None  # it really ran
    for i, text in enumerate(outputs):
        assert not _leaks(text), f"output {i} leaks the password: {text[:2000]}"

    # 3. every file under the study folder (artifacts, logs, databases beside it)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    for p in files:
        assert SENTINEL.encode() not in p.read_bytes(), f"{p} holds the password"

    # 4. MLflow: experiments, runs, params, tags, metric names and every artifact
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=_url(mlflow_db))
    exps = client.search_experiments()
    assert exps
    runs = client.search_runs([e.experiment_id for e in exps], max_results=1000)
    roles = sorted(r.data.tags.get("tuner.role", "") for r in runs)
    assert roles == ["refit", "study", "trial", "trial"]
    blobs = [json.dumps([e.name, e.tags, e.artifact_location]) for e in exps]
    for r in runs:
        blobs.append(
            json.dumps(
                [r.info.run_name, r.info.artifact_uri, r.data.params, r.data.tags, sorted(r.data.metrics)]
            )
        )
        artifacts_dir = tmp_path / "downloaded" / r.info.run_id
        artifacts_dir.mkdir(parents=True)
        local = Path(client.download_artifacts(r.info.run_id, "", str(artifacts_dir)))
        for p in local.rglob("*"):
            if p.is_file():
                assert SENTINEL.encode() not in p.read_bytes(), f"artifact {p.name} holds the password"
    assert any("storage.kind" in b for b in blobs)  # the params were really read
    for b in blobs:
        assert not _leaks(b), b[:2000]

    # 5. the storage: study and trial attributes
    storage = optuna.storages.RDBStorage(_url(store_db))
    study = optuna.load_study(study_name="tiny", storage=storage)
    study_id = storage.get_study_id_from_name("tiny")
    dumped = json.dumps(
        [study.user_attrs, storage.get_study_system_attrs(study_id)]
        + [[t.user_attrs, t.system_attrs, t.params] for t in study.get_trials()],
        default=str,
    )
    assert "tuner_split_fingerprint" in dumped
    assert not _leaks(dumped)


@pytest.mark.parametrize("where", ["storage", "tracking"])
def test_errors_for_an_unreachable_host_do_not_show_the_password(tmp_path: Path, where: str) -> None:
    _admin().close()  # skips without the local server, like the others
    doc = tiny_study()
    bad = _url("tuner_nowhere", host="127.0.0.1:1")  # nothing listens on port 1
    if where == "tracking":
        doc["mlflow"]["tracking_uri"] = bad
    else:
        doc["storage"] = "postgresql://postgres:${TUNER_TEST_PG_PASSWORD}@127.0.0.1:1/tuner_nowhere"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    out = _tune(tmp_path, "study.yaml", TUNER_TEST_PG_PASSWORD=SENTINEL, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("tune: error: ") and out.stderr.count("\n") == 1
    assert "127.0.0.1" in out.stderr and "Traceback" not in out.stderr
    assert not _leaks(out.stdout + out.stderr), out.stderr
    assert "***" in out.stderr or "postgres:" not in out.stderr  # masked if shown at all
