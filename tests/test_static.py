"""ruff and mypy are part of the test suite: 'tests pass' means everything passes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (run 'make deps')")
    return found


def test_ruff() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "src", "tests", "bench"], cwd=TOP,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy() -> None:
    proc = subprocess.run([_tool("mypy")], cwd=TOP, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
