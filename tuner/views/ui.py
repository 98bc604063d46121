"""``tune ui``: the MLflow UI (and optionally optuna-dashboard) on a study's stores.

The MLflow UI is ``mlflow server`` on the study's tracking store with the artifact
root beside it, bound to 127.0.0.1 unless told otherwise: the UI has no login and
lets anyone who reaches it read and delete runs. A remote (http/https) tracking
server is already running somewhere, so for one this only prints its URL.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tuner.errors import ConfigError, StorageError, TunerError
from tuner.secrets import mask_secrets

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = ["die_with_parent", "is_loopback", "mlflow_server_command", "run_table_url", "serve_ui"]

READY_TIMEOUT = 120.0  # seconds for `mlflow server` to answer /health (~10 s here, more when busy)
_QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The experiment's shared view that tuner's tracker writes (tuner.tracking.experiment_view,
# which views may not import; a unit test holds the two names equal):
# the run table with the score columns shown. A URL with its key opens the table that way.
VIEW_KEY = "tuner"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"


def run_table_url(base: str, experiment_id: str | None, view: bool = False) -> str:
    """The URL of an experiment's run table in the MLflow UI (the UI's own route), in
    MLflow 3's model-training navigation rather than the GenAI one; ``view``: in tuner's
    shared view of the table (the score columns shown)."""
    base = base.rstrip("/")
    if not experiment_id:
        return f"{base}/#/experiments?workflowType=machine_learning"
    query = "workflowType=machine_learning" + (f"&viewStateShareKey={VIEW_KEY}" if view else "")
    return f"{base}/#/experiments/{experiment_id}/runs?{query}"


def _check_port(host: str, port: int) -> None:
    """Raise ``TunerError`` unless a server can listen on ``host:port``: the port taken
    and a host that is not this machine's are told apart, each with its fix."""
    import errno

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise TunerError(
                    f"port {port} on {host} is in use: choose another with --port/--dashboard-port"
                ) from None
            reason = e.strerror or str(e)
            raise TunerError(
                f"cannot listen on --host {host} ({reason}): give an address of this machine, "
                "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
            ) from None


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def mlflow_server_command(uri: str, host: str, port: int) -> tuple[list[str], dict[str, str]]:
    """``mlflow server`` on the tracking store ``uri`` with artifacts beside its database.

    Returns the command and the environment it needs: the store's URI travels in
    ``MLFLOW_BACKEND_STORE_URI``, not argv, so a database password never shows in ``ps``.
    """
    cmd = [sys.executable, "-m", "mlflow", "server"]
    env = {
        "MLFLOW_BACKEND_STORE_URI": uri,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # no background job runner
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    db = _sqlite_path(uri)
    if db is not None:
        # where tuner's experiments keep their artifacts (tuner.tracking.tracker._artifact_location)
        cmd += ["--default-artifact-root", (db.parent / "mlartifacts").resolve().as_uri()]
    cmd += ["--host", host, "--port", str(port), "--workers", "1"]
    if not is_loopback(host):
        # MLflow refuses Host headers other than localhost/private IPs unless told
        cmd += ["--allowed-hosts", "*"]
    return cmd, env


def _experiment_id(config: StudyConfig) -> tuple[str | None, bool]:
    """The study's experiment id, and whether it has tuner's shared view."""
    from mlflow.tracking import MlflowClient

    try:
        exp = MlflowClient(tracking_uri=config.tracking_uri).get_experiment_by_name(config.experiment_name)
    except Exception as e:
        raise StorageError(
            f"cannot read the MLflow store {mask_secrets(config.tracking_uri)}: "
            f"{mask_secrets(str(e).splitlines()[0] if str(e) else type(e).__name__)}"
        ) from None
    if exp is None:
        return None, False
    return exp.experiment_id, VIEW_TAG in exp.tags


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TunerError(
                f"mlflow server exited with status {proc.returncode} before it answered at {url}; "
                "run it with --debug to see its output"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TunerError(f"mlflow server did not answer at {url} within {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server we started and its workers (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def serve_ui(
    config: StudyConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    dashboard: bool = False,
    dashboard_only: bool = False,
    dashboard_port: int = 8080,
    debug: bool = False,
    out: TextIO | None = None,
) -> int:
    """Start the MLflow UI on the study's tracking store (and/or optuna-dashboard on its
    storage), print their URLs and serve until Ctrl-C or SIGTERM.

    Raises:
        ConfigError: MLflow is disabled for the study, or optuna-dashboard is missing.
        StorageError: the tracking store does not exist yet (nothing is created).
    """
    out = out or sys.stdout
    want_mlflow = not dashboard_only
    want_dashboard = dashboard or dashboard_only
    remote = config.tracking_uri.split(":", 1)[0].lower() in ("http", "https")
    _check_request(config, host, want_mlflow, want_dashboard)
    for p in ([port] if want_mlflow and not remote else []) + ([dashboard_port] if want_dashboard else []):
        _check_port(host, p)
    proc: subprocess.Popen[bytes] | None = None
    exp: tuple[str | None, bool] = (None, False)
    if want_mlflow and remote:
        _print_remote(config, out)
    elif want_mlflow:
        proc, exp = _start_mlflow(config, host, port, debug, out)
    # SIGTERM and SIGINT both stop the servers, even where a shell started this in the
    # background with SIGINT ignored
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _serve(config, proc, exp, host, port, dashboard_port if want_dashboard else None, out)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc is not None:
            _stop(proc)
    return 0


def _check_request(config: StudyConfig, host: str, want_mlflow: bool, want_dashboard: bool) -> None:
    """Warn of a non-loopback host; refuse what cannot be served, before starting anything."""
    if not is_loopback(host):
        print(
            f"warning: --host {host} exposes the UI beyond this machine; it has no login and lets "
            "anyone who can reach it read and delete runs. Use 127.0.0.1 unless the network is trusted",
            file=sys.stderr,
        )
    if want_dashboard:
        try:
            import optuna_dashboard  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--dashboard needs optuna-dashboard, which is not installed: "
                "pip install optuna-dashboard (or pip install 'tuner[dashboard]')"
            ) from None
    if want_mlflow and not config.mlflow.enabled:
        raise ConfigError(
            f"mlflow.enabled is false in {config.source_file}, so this study has no MLflow runs to "
            "show: use tune ui --dashboard-only for the Optuna dashboard, or enable mlflow"
        )


def _print_remote(config: StudyConfig, out: TextIO) -> None:
    """A remote tracking server is already running: print its run table's URL."""
    exp_id, view = None, False
    # one quick look for the experiment id, not MLflow's minutes of retries
    saved = {k: os.environ.get(k) for k in _QUICK_HTTP}
    os.environ.update(_QUICK_HTTP)
    try:
        exp_id, view = _experiment_id(config)
    except TunerError:
        pass  # the server may be down or need credentials; its URL is still the answer
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    print(
        f"the study's tracking server is remote; its run table: {run_table_url(mask_secrets(config.tracking_uri), exp_id, view)}",
        file=out,
        flush=True,
    )


def _start_mlflow(
    config: StudyConfig, host: str, port: int, debug: bool, out: TextIO
) -> tuple[subprocess.Popen[bytes], tuple[str | None, bool]]:
    """``mlflow server`` on the study's local store (which must exist already), and the
    study's experiment (``_experiment_id``)."""
    uri = config.tracking_uri
    db = _sqlite_path(uri)
    if db is not None and not db.exists():
        raise StorageError(f"no MLflow store at {db} yet: run `tune {config.source_file}` first")
    exp = _experiment_id(config)
    if exp[0] is None:
        print(f"note: no experiment {config.experiment_name!r} in the store yet", file=out)
    cmd, env = mlflow_server_command(uri, host, port)
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=None if debug else subprocess.DEVNULL,
        stderr=None if debug else subprocess.DEVNULL,
        start_new_session=True,  # its own group, so Ctrl-C here stops all of its workers
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
    )
    return proc, exp


def _serve(
    config: StudyConfig,
    proc: subprocess.Popen[bytes] | None,
    exp: tuple[str | None, bool],
    host: str,
    port: int,
    dashboard_port: int | None,
    out: TextIO,
) -> None:
    """Print the URLs once the servers answer, then serve until interrupted."""
    shown_host = socket.gethostname() if host in ("0.0.0.0", "::") else host
    if proc is not None:
        base = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        _wait_ready(proc, base, READY_TIMEOUT)
        print(f"MLflow UI: {run_table_url(f'http://{shown_host}:{port}', *exp)}", file=out, flush=True)
    if dashboard_port is not None:
        from optuna_dashboard import run_server

        from tuner.storage.backends import build_storage

        print(f"optuna-dashboard: http://{shown_host}:{dashboard_port}/", file=out, flush=True)
        print("press Ctrl-C to stop", file=out, flush=True)
        storage = build_storage(config.storage_url, create=False)
        if not _STOP:  # a Ctrl-C swallowed by a library while starting up still stops us
            run_server(storage, host=host, port=dashboard_port)
    elif proc is not None:
        print("press Ctrl-C to stop", file=out, flush=True)
        proc.wait()
        if proc.returncode:
            raise TunerError(f"mlflow server exited with status {proc.returncode}")


def die_with_parent() -> None:
    """In a child, before exec (Linux): get SIGTERM when the parent dies, even by SIGKILL,
    so a killed ``tune ui`` leaves no ``mlflow server`` behind holding its port."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)


_STOP: list[int] = []  # signals received: some libraries catch a KeyboardInterrupt and go on


def _raise_interrupt(signum: int, frame: Any) -> None:
    _STOP.append(signum)
    raise KeyboardInterrupt
