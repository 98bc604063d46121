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
from urllib.parse import urljoin

import pytest
import yaml

from tests.conftest import REPO, tiny_study
from tuner.views.ui import die_with_parent

TUNE = [sys.executable, "-m", "tuner.cli"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
NAME = "browser-iris"
REGISTERED = "browser-iris-mlp"
METRIC = "balanced_accuracy"


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
            "mlflow.log_model": True,
            "mlflow.register": REGISTERED,
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
    # the model-training navigation, and tuner's shared view: the score columns shown
    assert url == (
        f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs"
        "?workflowType=machine_learning&viewStateShareKey=tuner"
    )
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
    # tune report --json says where the refit's run and model are
    refit = _report(study_dir)["refit"]
    refit_run = next(r for r in runs if r["info"]["run_name"].startswith("refit "))
    assert refit["run_id"] == refit_run["info"]["run_id"]
    assert refit["model_uri"].startswith("models:/m-") and refit["registered"]["name"] == REGISTERED
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/api/2.0/mlflow/artifacts/list?run_id={parent}&path=plots", timeout=30
    ) as r:
        files = sorted(Path(f["path"]).name for f in json.load(r)["files"])
    # 3 completed trials: importances need 5 (tune report's threshold), the rest are drawn
    assert files == ["learning_curves.png", "optimization_history.png", "parallel_coordinate.png"]


def _cell(page, run_name: str, col_id: str) -> str:
    """The text of a run-table cell: the row is found by its run name (AG Grid splits a
    row between its pinned and scrolling parts; both carry the row index)."""
    name = page.locator("[col-id='attributes.`Run Name`']").filter(has_text=run_name).first
    row = name.evaluate("e => e.closest('[row-index]').getAttribute('row-index')")
    return page.locator(f"[row-index='{row}'] [col-id='{col_id}']").first.inner_text().strip()


@pytest.mark.browser
def test_mlflow_ui_shows_scores_trials_and_the_refit_model_in_chromium(study_dir, ui):
    """The run table opens in the classic model-training view with tuner's columns: the
    parent's best_cv_ and test_ values on its row, every trial's cv_ score under it; a
    trial's page has its fold curves; the refit's page shows the model and its registry
    version. Screenshots under test-artifacts/ (looked at before issue #15 was resolved)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (CI's .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    url, _, _ = ui
    report = _report(study_dir)
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
            close = page.get_by_role("button", name="Close")  # MLflow 3's assistant panel, if open
            if close.count():
                close.first.click()
            # the model-training navigation, not the GenAI one
            page.get_by_text("Model registry", exact=True).wait_for(timeout=30_000)
            assert "Evaluation runs" not in page.inner_text("body")
            # the parent's row is the study's summary, before anything is expanded
            best_cv = _cell(page, parent, f"metrics.`best_cv_{METRIC}`")
            test = _cell(page, parent, f"metrics.`test_{METRIC}`")
            assert float(best_cv) == pytest.approx(report["best"]["cv_mean"], abs=1e-6)
            assert float(test) == pytest.approx(report["test"]["score"], abs=1e-6)
            name_cells = page.locator("[col-id='attributes.`Run Name`']")
            # the trials are nested under the parent, collapsed: expand it as a person would
            name_cells.filter(has_text=parent).locator("button").first.click()
            page.get_by_text("trial-002 complete", exact=True).wait_for(timeout=30_000)
            page.get_by_text(re.compile(r"^refit trial-00\d$")).first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow-run-table.png"))
            shown = [n.strip() for n in name_cells.locator("a").all_inner_texts()]
            assert shown[0] == parent
            trials = sorted(n for n in shown if n.startswith("trial-"))
            assert trials == [f"trial-00{i} complete" for i in range(3)]
            for name in trials:  # every trial row has its score
                float(_cell(page, name, f"metrics.`cv_{METRIC}`"))
            refit = next(n for n in shown if re.fullmatch(r"refit trial-00\d", n))
            links = {
                n.strip(): a
                for n, a in zip(
                    name_cells.locator("a").all_inner_texts(), name_cells.locator("a").all(), strict=True
                )
            }
            trial_url = urljoin(page.url, links["trial-001 complete"].get_attribute("href"))
            refit_url = urljoin(page.url, links[refit].get_attribute("href"))
            # MLflow 3.17 keeps a per-browser GenAI / Model training switch (GenAI until
            # chosen), which run pages follow; the docs say to choose "Model training" once
            page.goto(url.split("#")[0] + "#/experiments")
            page.get_by_text("Model training", exact=True).first.click()
            page.wait_for_function("localStorage.getItem('mlflow.workflowType_v1') !== null", timeout=30_000)

            # a trial's page: its parent, its state, its fold curves among its artifacts
            page.goto(trial_url)
            page.get_by_text("Parent run", exact=True).wait_for(timeout=30_000)
            page.get_by_text("tuner.state", exact=True).first.wait_for(timeout=30_000)
            page.get_by_role("link", name=parent).first.wait_for(timeout=30_000)  # the parent link
            assert "trial-001 complete" in page.inner_text("body")
            page.get_by_text("Model registry", exact=True).wait_for(timeout=30_000)  # the switch held
            page.screenshot(path=str(ARTIFACTS / "mlflow-trial-run.png"), full_page=True)
            page.get_by_role("tab", name="Artifacts").click()
            page.get_by_text("fold_curves.png", exact=True).first.click()
            page.locator("img[src*='fold_curves.png'], img[src^='blob:']").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow-trial-fold-curves.png"))

            # the refit's page: its description names the model; the model and its version
            page.goto(refit_url)
            # the heading, not the run table's column of that name (still in the page while it navigates)
            page.get_by_role("heading", name="Registered models").wait_for(timeout=30_000)
            page.get_by_role("link", name=REGISTERED).first.wait_for(timeout=30_000)
            assert report["refit"]["model_uri"] in page.inner_text("body")  # description and tags
            page.screenshot(path=str(ARTIFACTS / "mlflow-refit-run.png"), full_page=True)
            page.get_by_role("tab", name="Artifacts").click()
            page.get_by_text("model", exact=True).first.click()  # the run's own model/ folder
            page.get_by_text("recipe.json", exact=True).first.wait_for(timeout=30_000)
            page.get_by_text("state_dict.pt", exact=True).first.wait_for(timeout=30_000)
            page.get_by_text("README.md", exact=True).first.click()  # the lines that load it
            page.get_by_text("tuner.load_refit", exact=False).first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "mlflow-refit-artifacts.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "mlflow-failure.png"), full_page=True)
            raise
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
        # the lockbox, readable there: the test score and how often it was looked at, as values
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", timeout=30
        ) as r:
            attrs = {a["key"]: a["value"] for a in json.load(r)["user_attrs"]}
        report = _report(study_dir)
        assert float(attrs[f"test_{METRIC}"]) == pytest.approx(report["test"]["score"])
        assert attrs["test_scored"].startswith("1 time(s), for trial(s) #")
        assert attrs["refit_model"] == report["refit"]["model_uri"]
    finally:
        code = _interrupt(proc)
    assert code == 0
