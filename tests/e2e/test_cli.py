"""Run `tune` as a user would: a subprocess, its output and exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TUNE = [sys.executable, "-m", "tuner.cli"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}


def _tune(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TUNE, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


def test_tune_runs_a_study_and_reports(tmp_path, write_study):
    write_study(**{"budget.n_trials": 2})
    out = _tune("study.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "created study 'tiny'" in text
    assert "best trial #" in text and "mean ± std over folds" in text
    assert "held-out test (360 samples" in text and "validation optimism (+ = cross-validation" in text
    assert "Traceback" not in out.stderr
    # not a terminal: one plain line per trial
    assert text.count("trial   0 complete") == 1 and "trial   1 " in text

    report = _tune("report", "study.yaml", "--json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert data["study"] == "tiny" and data["metric"] == "balanced_accuracy"
    assert data["direction"] == "maximize"
    assert data["counts"]["complete"] == 2
    assert set(data["best"]) >= {"number", "params", "cv_mean", "cv_std"}
    assert data["test"]["refit_trial_number"] == data["best"]["number"]
    assert 0 < data["test"]["score"] <= 1

    table = _tune("report", "study.yaml", cwd=tmp_path)
    assert "held-out test" in table.stdout

    best = _tune("best", "study.yaml", "--format", "json", cwd=tmp_path)
    assert json.loads(best.stdout) == data["best"]["params"]
    _views_refuse_bad_paths_hosts_and_ports(tmp_path)


def _views_refuse_bad_paths_hosts_and_ports(tmp_path: Path) -> None:
    """On an existing study: each bad --html, --host or --port is one line and exit 2."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = str(taken.getsockname()[1])
        cases = {
            ("report", "study.yaml", "--html", str(tmp_path)): "is a folder: give a file name",
            ("report", "study.yaml", "--html", "/proc/version"): "--html /proc/version: cannot write it (",
            ("ui", "study.yaml", "--host", "no-such-host.invalid"): "cannot listen on --host no-such-host",
            ("ui", "study.yaml", "--port", busy): f"port {busy} on 127.0.0.1 is in use",
            ("ui", "study.yaml", "--port", "99999"): "a port is an integer from 1 to 65535, got '99999'",
        }
        for args, expected in cases.items():
            out = _tune(*args, cwd=tmp_path)
            assert out.returncode == 2, (args, out.stderr)
            assert "Traceback" not in out.stderr
            last = out.stderr.strip().splitlines()[-1]  # argparse prints its usage first
            assert expected in last and " error: " in last, (args, out.stderr)


def test_bad_config_exits_2_and_creates_nothing(tmp_path, write_study):
    write_study(**{"data.folds": 1})
    out = _tune("study.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("tune: error: data.folds must be >= 2, got 1 (in study.yaml)")
    assert "Traceback" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_n_trials_override_and_resume(tmp_path, write_study):
    write_study(**{"budget.n_trials": 5})
    first = _tune("study.yaml", "--n-trials", "1", "--no-refit", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "1/1 finished" in first.stdout and "not scored yet" in first.stdout
    second = _tune("study.yaml", "--n-trials", "2", "--no-refit", cwd=tmp_path)
    assert "resuming study" in second.stdout and "2/2 finished" in second.stdout


def test_help_is_fast_and_lists_commands(tmp_path):
    out = _tune("--help", cwd=tmp_path)
    assert out.returncode == 0 and "report" in out.stdout and "examples:" in out.stdout
