"""docker/: the worker image lints clean, compose and Kubernetes manifests validate.

No Docker engine or cluster runs here, so: hadolint on the Dockerfile, the compose
file against the Compose Specification's JSON schema, the manifests against the
Kubernetes OpenAPI schemas (kubernetes-validate, offline), plus what the issue
requires of each (structural asserts).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def _yaml(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DOCKER / name).read_text()) if d]


def test_dockerfile_passes_hadolint() -> None:
    out = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\n")
    out = subprocess.run([_tool("hadolint"), "--no-color", str(bad)], capture_output=True, text=True)
    assert out.returncode != 0 and "DL3007" in out.stdout


def test_test_images_pass_hadolint() -> None:
    out = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKER / "test" / "postgres.Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_worker_image_is_cuda_pytorch_with_tune_entrypoint() -> None:
    # The base is a build argument (the compose test passes a local Debian base); its
    # default is the CUDA PyTorch image GPU machines want.
    text = (DOCKER / "Dockerfile").read_text()
    (arg,) = [line for line in text.splitlines() if line.startswith("ARG BASE_IMAGE=")]
    base = arg.split("=", 1)[1]
    assert base.startswith("pytorch/pytorch:") and "cuda" in base and ":latest" not in base
    assert "FROM ${BASE_IMAGE}" in text
    # offline when docker/wheels holds wheels; the dependencies' layer apart from tuner's code
    assert "--no-index --find-links /tmp/wheels" in text
    assert text.index('pip install "${offline[@]}"') < text.index("COPY tuner ./tuner")
    assert 'ENTRYPOINT ["tune"]' in text
    assert "USER 1000" in text  # not root


def test_compose_file_matches_the_compose_spec() -> None:
    out = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(DOCKER / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_services() -> None:
    (doc,) = _yaml("compose.yaml")
    svc = doc["services"]
    assert {"db", "mlflow", "worker"} <= set(svc)
    assert "ports" not in svc["db"]  # PostgreSQL is reachable on the compose network only
    for port in svc["mlflow"].get("ports", []):
        assert str(port).startswith("127.0.0.1:")  # the UI on the host's loopback only
    command = " ".join(svc["mlflow"]["command"])
    assert "--backend-store-uri=postgresql://" in command and "@db:" in command
    assert any(v.startswith("mlartifacts:") for v in svc["mlflow"]["volumes"])
    worker = svc["worker"]
    gpus = worker["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpus["count"] == 1 and "gpu" in gpus["capabilities"]
    assert worker["environment"]["TUNER_STORAGE"].startswith("postgresql://tuner@db:")
    assert "--no-refit" in worker["command"]  # the refit runs once, in its own service
    # no password in any URL: libpq reads $PGPASSWORD from the environment
    text = (DOCKER / "compose.yaml").read_text()
    assert "tuner:${" not in text and "${TUNER_DB_PASSWORD:?" in text


def _override() -> dict:
    """docker/compose.test.yaml, with Compose's ``!reset`` tags read as plain values."""

    class Loader(yaml.SafeLoader):
        pass

    def reset(loader: yaml.SafeLoader, node: yaml.Node) -> object:
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node)
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node)
        return loader.construct_scalar(node)

    Loader.add_constructor("!reset", reset)
    return yaml.load((DOCKER / "compose.test.yaml").read_text(), Loader=Loader)  # noqa: S506


def test_compose_test_override_matches_the_compose_spec(tmp_path: Path) -> None:
    plain = tmp_path / "compose.test.yaml"
    plain.write_text(yaml.safe_dump(_override()))
    out = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(plain)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_test_override_keeps_every_service_on_the_hosts_loopback() -> None:
    doc = _override()
    (base,) = _yaml("compose.yaml")
    assert set(doc["services"]) == set(base["services"])  # it overrides, adds nothing
    for name, svc in doc["services"].items():
        assert svc["network_mode"] == "host" and svc["networks"] == [], name
    command = " ".join(doc["services"]["mlflow"]["command"])
    assert "--host=127.0.0.1" in command and "@127.0.0.1:55432/" in command
    assert doc["services"]["db"]["environment"]["POSTGRES_LISTEN_ADDRESSES"] == "127.0.0.1"
    worker = doc["services"]["worker"]["environment"]
    assert worker["TUNER_STORAGE"] == "postgresql://tuner@127.0.0.1:55432/tuner"  # no password
    assert worker["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:55000"


def test_compose_test_studies_are_valid_studies(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.config import load_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:55000")
    a = load_config(DOCKER / "test" / "study" / "a.yaml")
    b = load_config(DOCKER / "test" / "study" / "b.yaml")
    assert (a.name, b.name) == ("docker-a", "docker-b") and b.budget.n_trials == 10


def test_kubernetes_manifests_match_the_api_schemas() -> None:
    files = sorted(str(p) for p in (DOCKER / "k8s").glob("*.yaml"))
    out = subprocess.run(
        [_tool("kubernetes-validate"), "-k", "1.33.0", "--strict", *files], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") == len(files)


def test_kubernetes_validate_would_catch_a_typo(tmp_path: Path) -> None:
    (job,) = _yaml("k8s/job.yaml")
    job["spec"]["paralelism"] = 4
    bad = tmp_path / "job.yaml"
    bad.write_text(yaml.safe_dump(job))
    out = subprocess.run(
        [_tool("kubernetes-validate"), "-k", "1.33.0", "--strict", str(bad)], capture_output=True, text=True
    )
    assert out.returncode != 0


def test_indexed_gpu_job_reaches_the_database_through_config_and_secret() -> None:
    (job,) = _yaml("k8s/job.yaml")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == spec["completions"] >= 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
    (config,) = _yaml("k8s/config.yaml")
    (secret,) = _yaml("k8s/secret.example.yaml")
    assert refs == {config["metadata"]["name"], secret["metadata"]["name"]}
    assert "PGPASSWORD" in secret["stringData"]
    assert config["data"]["TUNER_STORAGE"].startswith("postgresql://tuner@")  # no password
    assert "--no-refit" in container["args"]
    study = yaml.safe_load(config["data"]["study.yaml"])
    assert study["budget"]["n_trials"] >= 1 and "${MLFLOW_TRACKING_URI}" in study["mlflow"]["tracking_uri"]


def test_compose_study_file_is_a_valid_study(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.config import load_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    config = load_config(DOCKER / "study" / "study.yaml")
    assert config.tracking_uri == "http://mlflow:5000"
