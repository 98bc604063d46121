"""The MLflow UI proven in a real browser, and the commands that read a finished study
(issue #7): one tiny study (iris, tiny MLP, 3 trials, 2 folds, 2 epochs) serves every test.

The browser test opens the run table `tune ui` prints in headless Debian chromium via
Playwright (`executable_path=/usr/bin/chromium`, no downloaded browser) and saves
screenshots under test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, tiny_study
from tuner.views.ui import die_with_parent

TUNE = [sys.executable, "-m", "tuner.cli"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
NAME = "browser-iris"


def _tune(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TUNE, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("browser")
    doc = tiny_study(
        **{
            "name": NAME,
            "data.source": "sklearn:iris",
            "data.test_size": 0.3,
            "training.batch_size": 32,
            "search_space.width": {"int": [8, 16], "step": 8},
            "budget.n_trials": 3,
        }
    )
    (d / "study.yaml").write_text(yaml.safe_dump(doc))
    out = _tune("study.yaml", cwd=d)
    assert out.returncode == 0, out.stdout + out.stderr
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(study_dir: Path):
    """`tune ui` on the study: yields (run-table URL, port); stops it with SIGINT after."""
    port = _free_port()
    proc = subprocess.Popen(
        [*TUNE, "ui", "study.yaml", "--port", str(port)],
        cwd=study_dir,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent,  # a killed test run leaves no server behind on a shared machine
    )
    url = None
    deadline = time.monotonic() + 180
    lines = []
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        lines.append(line)
        m = re.search(r"MLflow UI: (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    try:
        assert url, (
            f"tune ui printed no URL: {''.join(lines)} {proc.stderr.read() if proc.poll() is not None else ''}"
        )
        yield url, port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C does
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    """The process's first line of output, or '' after ``timeout`` seconds (never hangs)."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        return proc.stdout.readline() if sel.select(timeout) else ""


def _interrupt(proc: subprocess.Popen) -> int | None:
    """Ctrl-C the process; kill it if it does not stop, so no test leaves it behind."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _report(study_dir: Path) -> dict:
    out = _tune("report", "study.yaml", "--json", cwd=study_dir)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ui_serves_the_study_store_and_prints_its_run_table(study_dir, ui):
    url, port, _ = ui
    exp_id = _report(study_dir)["mlflow"]["experiment_id"]
    assert url == f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs"
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [exp_id], "max_results": 100}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        runs = json.load(r)["runs"]
    names = sorted(r["info"]["run_name"] for r in runs)
    assert f"study {NAME}" in names and any(re.fullmatch(r"refit trial-00\d", n) for n in names)
    assert len(names) == 5
    assert [n for n in names if n.startswith("trial-")] == [f"trial-00{i} complete" for i in range(3)]
    # the study plots sit on the parent run
    parent = next(r for r in runs if r["info"]["run_name"] == f"study {NAME}")["info"]["run_id"]
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/artifacts/list?run_id={parent}&path=plots", timeout=30
    ) as r:
        files = sorted(Path(f["path"]).name for f in json.load(r)["files"])
    # 3 completed trials: importances need 5 (tune report's threshold), the rest are drawn
    assert files == ["learning_curves.png", "optimization_history.png", "parallel_coordinate.png"]


@pytest.mark.browser
def test_mlflow_ui_lists_the_parent_and_trial_runs_in_chromium(study_dir, ui):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (CI's .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    url, _, _ = ui
    ARTIFACTS.mkdir(exist_ok=True)
    flags = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(url)
            parent = f"study {NAME}"
            page.get_by_text(parent, exact=True).first.wait_for(timeout=90_000)
            close = page.get_by_role("button", name="Close")  # MLflow 3's assistant panel hides columns
            if close.count():
                close.first.click()
            name_cells = page.locator("[col-id='attributes.`Run Name`']")
            # the trials are nested under the parent, collapsed: expand it as a person would
            name_cells.filter(has_text=parent).locator("button").first.click()
            page.get_by_text("trial-002 complete", exact=True).wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow-run-table.png"))
            shown = [n.strip() for n in name_cells.locator("a").all_inner_texts()]
            assert shown[0] == parent
            assert sorted(n for n in shown if n.startswith("trial-")) == [
                f"trial-00{i} complete" for i in range(3)
            ]
            assert any(re.fullmatch(r"refit trial-00\d", n) for n in shown)
            # a trial's page: its name, its parent, its state as a tag, its description
            page.get_by_text("trial-001 complete", exact=True).click()
            page.wait_for_url(re.compile(r".*/runs/[0-9a-f]{32}"), timeout=30_000)
            page.get_by_text("Parent run", exact=True).wait_for(timeout=30_000)
            page.get_by_text("tuner.state", exact=True).first.wait_for(timeout=30_000)
            page.get_by_role("link", name=parent).first.wait_for(timeout=30_000)  # the parent link
            assert "trial-001 complete" in page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "mlflow-trial-run.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "mlflow-run-table.png").stat().st_size > 10_000


def test_ui_stops_on_ctrl_c_and_frees_the_port(ui):
    """Runs after the tests above that use the same server (pytest keeps file order)."""
    _, port, proc = ui
    proc.send_signal(signal.SIGINT)  # what Ctrl-C does
    assert proc.wait(timeout=60) == 0
    # the server and its worker are gone with it: nothing listens there any more
    # (binding would race the closed connections' TIME_WAIT, connecting does not)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_status_best_and_html_report_of_the_finished_study(study_dir, tmp_path):
    report = _report(study_dir)
    status = _tune("status", "study.yaml", cwd=study_dir)
    assert status.returncode == 0, status.stderr
    assert "3/3 finished — complete 3, pruned 0, failed 0, running 0" in status.stdout
    assert (
        f"best so far: trial #{report['best']['number']} accuracy" not in status.stdout
    )  # metric is balanced
    assert f"best so far: trial #{report['best']['number']} balanced_accuracy" in status.stdout
    assert "budget: reached" in status.stdout

    best_yaml = _tune("best", "study.yaml", cwd=study_dir)
    assert best_yaml.stdout.startswith(
        f"# best parameters of study {NAME} (trial #{report['best']['number']}"
    )
    assert yaml.safe_load(best_yaml.stdout) == report["best"]["params"]
    best_json = _tune("best", "study.yaml", "--format", "json", cwd=study_dir)
    assert json.loads(best_json.stdout) == report["best"]["params"]

    out = _tune("report", "study.yaml", "--html", str(tmp_path / "r.html"), cwd=study_dir)
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "r.html").read_text()
    assert page.count("src='data:image/png;base64,") == 3
    assert "param importances: not drawn (needs 5 completed trial(s)" in page
    bad = _tune("report", "study.yaml", "--html", str(tmp_path / "nope" / "r.html"), cwd=study_dir)
    assert bad.returncode == 2 and "folder" in bad.stderr and "does not exist" in bad.stderr


def test_commands_on_a_study_that_does_not_exist_create_nothing(tmp_path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(tiny_study(name="never-run")))
    for args in (
        ["status", "study.yaml"],
        ["best", "study.yaml"],
        ["ui", "study.yaml", "--port", str(_free_port())],
    ):
        out = _tune(*args, cwd=tmp_path)
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.startswith("tune: error: no ") and "run `tune" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_dashboard_only_serves_the_study_storage(study_dir):
    pytest.importorskip("optuna_dashboard")  # optional: pip install 'tuner[dashboard]'
    port = _free_port()
    proc = subprocess.Popen(
        [*TUNE, "ui", "study.yaml", "--dashboard-only", "--dashboard-port", str(port)],
        cwd=study_dir,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        preexec_fn=die_with_parent,
    )
    try:
        assert _first_line(proc, 120).strip() == f"optuna-dashboard: http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180  # a loaded 2-core CI machine starts it slowly
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.load(r)["study_summaries"]
                break
            except OSError:
                assert time.monotonic() < deadline, "optuna-dashboard did not answer"
                time.sleep(0.3)
        assert [s["study_name"] for s in studies] == [NAME]
    finally:
        code = _interrupt(proc)
    assert code == 0
