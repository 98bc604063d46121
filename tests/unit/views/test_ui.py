"""`tune ui` wiring and the lazy CLI path (issue #7); no server is started here."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.errors import ConfigError, StorageError, TunerError
from tuner.views.ui import is_loopback, mlflow_server_command, run_table_url, serve_ui

HEAVY = ("torch", "mlflow", "optuna", "sklearn", "pandas", "matplotlib", "pydantic")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("myhost.example", False),
        ("::", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_run_table_url_is_the_ui_route():
    ml = "workflowType=machine_learning"  # MLflow 3's model-training navigation, not GenAI's
    assert run_table_url("http://127.0.0.1:5000/", "7") == f"http://127.0.0.1:5000/#/experiments/7/runs?{ml}"
    assert run_table_url("https://mlflow.corp", None) == f"https://mlflow.corp/#/experiments?{ml}"
    # tuner's shared view of the run table: the score columns shown
    assert run_table_url("http://h:1", "7", view=True).endswith(f"/runs?{ml}&viewStateShareKey=tuner")


def test_server_command_uses_the_study_store_and_artifacts_beside_it(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cmd, env = mlflow_server_command(uri, "127.0.0.1", 5123)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert env["MLFLOW_BACKEND_STORE_URI"] == uri and uri not in " ".join(cmd)  # not visible in `ps`
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert cmd[cmd.index("--default-artifact-root") + 1] == (tmp_path / "mlartifacts").as_uri()
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5123"
    assert cmd[cmd.index("--workers") + 1] == "1"
    assert "--allowed-hosts" not in cmd
    assert "--allowed-hosts" in mlflow_server_command(uri, "0.0.0.0", 5123)[0]


def _config(tmp_path: Path, **overrides):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_study(**overrides)))
    return load_config(path)


def test_ui_without_a_store_refuses_and_creates_nothing(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(StorageError, match=r"no MLflow store at .*mlflow\.db yet: run `tune"):
        serve_ui(config, port=_free_port())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_ui_of_a_study_without_mlflow_says_so(tmp_path):
    config = _config(tmp_path, **{"mlflow.enabled": False})
    with pytest.raises(ConfigError, match="mlflow.enabled is false"):
        serve_ui(config, port=_free_port())


def test_dashboard_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # import fails as if not installed
    config = _config(tmp_path)
    with pytest.raises(ConfigError, match="pip install optuna-dashboard"):
        serve_ui(config, port=_free_port(), dashboard=True)


def test_port_in_use_is_a_clear_error(tmp_path):
    config = _config(tmp_path)
    (tmp_path / "mlflow.db").touch()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(TunerError, match=f"port {port} on 127.0.0.1 is in use"):
            serve_ui(config, port=port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_imports_no_heavy_library():
    """`tune --help` must stay fast: nothing heavy on its path (timed in benchmarks/cli_help.py)."""
    code = (
        "import sys, json\n"
        "from tuner.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "ui" in out.stdout and "status" in out.stdout
    assert loaded == []


def test_remote_tracking_server_prints_its_url_and_starts_nothing(tmp_path):
    import io
    import time

    port = _free_port()  # nothing listens there: the server is "down", its URL is still the answer
    config = _config(tmp_path, **{"mlflow.tracking_uri": f"http://u:secret@127.0.0.1:{port}"})
    out = io.StringIO()
    started = time.monotonic()
    assert serve_ui(config, out=out) == 0
    assert time.monotonic() - started < 30  # no minutes of HTTP retries
    text = out.getvalue()
    assert f"http://u:***@127.0.0.1:{port}/#/experiments" in text and "secret" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_a_non_loopback_host_warns(tmp_path, capsys):
    config = _config(tmp_path, **{"mlflow.tracking_uri": f"http://127.0.0.1:{_free_port()}"})
    assert serve_ui(config, host="0.0.0.0") == 0  # remote store: prints its URL, starts nothing
    err = capsys.readouterr().err
    assert "warning: --host 0.0.0.0 exposes the UI beyond this machine" in err and "no login" in err
    serve_ui(config, host="127.0.0.1")
    assert "warning" not in capsys.readouterr().err


def test_children_die_with_a_killed_parent():
    """`tune ui` starts mlflow server with die_with_parent: SIGKILL of `tune ui` ends it."""
    import os
    import signal
    import time

    code = (
        "import subprocess, sys, time\n"
        "from tuner.views.ui import die_with_parent\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], preexec_fn=die_with_parent)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        # reaped by init once it exits; until then it may show as a zombie
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split()[2] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its SIGKILLed parent")


def test_the_tracker_writes_the_view_the_ui_url_opens():
    """The run table's view is an experiment tag the tracker writes and the URL names."""
    import json

    from tuner.tracking.experiment_view import VIEW_TAG, view_state
    from tuner.views.ui import VIEW_TAG as UI_VIEW_TAG

    assert VIEW_TAG == UI_VIEW_TAG
    columns = json.loads(view_state("f1_macro"))["selectedColumns"]
    assert {"metrics.`best_cv_f1_macro`", "metrics.`test_f1_macro`", "metrics.`cv_f1_macro`"} <= set(columns)
