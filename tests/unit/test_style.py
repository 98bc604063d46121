"""The house style, held by its tools: ruff's lint and format, and mypy on the package.
Each runs as the developer would run it, from the repository root."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which(name) or str(Path(sys.executable).with_name(name))
    return subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"])
def test_ruff_is_clean(args: tuple[str, ...]) -> None:
    result = _tool("ruff", *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_package_is_mypy_clean(tmp_path: Path) -> None:
    # a cache of its own: a stale shared cache must not hide (or invent) an error
    result = _tool("mypy", "--cache-dir", str(tmp_path / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
