"""The layering of the house, held by import-linter's contracts in pyproject.toml:
data flows down from the CLI, the objective never reaches storage or MLflow, and no
two modules anywhere import each other (imports inside functions count too)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run(
        [exe, "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(cwd)},
    )


def test_the_import_contracts_are_kept() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # a view that reaches up into the running of a study: a layer violated, and a cycle
        ("tuner/views/report.py", "from tuner.run.runner import run_study", "Layers"),
        # the objective writing to MLflow itself
        ("objectives/metrics.py", "import mlflow", "The objective never touches storage"),
        # two modules of one package importing each other, hidden in a function
        ("objectives/splits.py", "def _late():\n    from objectives.cv import fold_seed", "No two modules"),
    ],
)
def test_a_new_violation_breaks_a_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    copy = tmp_path / "repo"
    for part in ("tuner", "objectives", "search_spaces"):
        shutil.copytree(REPO / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    target = copy / module
    target.write_text(target.read_text() + "\n\n" + textwrap.dedent(line) + "  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    broken_lines = [ln for ln in result.stdout.splitlines() if ln.rstrip().endswith("BROKEN")]
    assert any(broken in ln for ln in broken_lines), result.stdout
