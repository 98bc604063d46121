"""`tune schema` and `tune init` as a user runs them (issue #7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tuner.config import load_config

TUNE = [sys.executable, "-m", "tuner.cli"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _tune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TUNE, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def test_schema_is_the_study_file_schema(tmp_path):
    out = _tune("schema", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    props = schema["properties"]
    assert {"name", "data", "search_space", "budget", "sampler", "pruner", "mlflow"} <= set(props)
    assert "base_dir" not in props and "source_file" not in props  # internal, not for users
    assert {"name", "data", "search_space"} <= set(schema["required"])
    assert schema.get("additionalProperties") is False  # editors flag typos
    assert list(tmp_path.iterdir()) == []


def test_init_writes_a_valid_commented_study_and_never_overwrites(tmp_path):
    out = _tune("init", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = tmp_path / "study.yaml"
    assert "wrote study.yaml; run it with: tune study.yaml" in out.stdout
    text = written.read_text()
    assert text.startswith("#") and text.count("#") > 10  # commented for a first-time user
    config = load_config(written)
    assert config.name and config.data.source.startswith("sklearn:")

    written.write_text(text + "# my edits\n")
    again = _tune("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "study.yaml already exists; tune init never overwrites" in again.stderr
    assert written.read_text().endswith("# my edits\n")

    other = _tune("init", "sub.yaml", cwd=tmp_path)
    assert other.returncode == 0 and (tmp_path / "sub.yaml").read_text() == text
