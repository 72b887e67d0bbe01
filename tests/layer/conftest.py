"""Fixtures for layering tests: fresh sysroots on ``layer_tree`` (tests/conftest.py: one
composed tree, minbase + a text kernel + base test packages, with the test repository in
its sources)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testlib.compose import ComposedTree

from .lib import CLI, ENV, REF


@pytest.fixture
def sysroot(tmp_path: Path, layer_tree: ComposedTree) -> Iterator[Path]:
    root = tmp_path / "sysroot"
    proc = subprocess.run([*CLI, "admin", "init", str(root), "--repo", str(layer_tree.repo),
                           "--ref", REF], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    yield root
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)
