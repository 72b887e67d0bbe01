"""Fixtures for layering tests: one composed tree (minbase + a text kernel + base test
packages) with the test repository in its sources, and fresh sysroots on it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from testlib.compose import ComposedTree, compose_ok
from testlib.debs import DebSpec, FlatRepo
from testlib.tools import write_treefile

from .lib import BASE_PACKAGES, CLI, ENV, LAYER_PACKAGES, REF


@pytest.fixture(scope="session")
def layer_repo(make_apt_repo: Callable[[str, Iterable[DebSpec]], FlatRepo]) -> FlatRepo:
    return make_apt_repo("layering", LAYER_PACKAGES)


@pytest.fixture(scope="session")
def layer_tree(tmp_path_factory: pytest.TempPathFactory, layer_repo: FlatRepo,
               compose_cachedir: Path) -> ComposedTree:
    top = tmp_path_factory.mktemp("layer-tree")
    (top / "vmlinuz").write_text("text kernel\n")
    tf = write_treefile(top / "tree.yaml", {
        "ref": REF, "version": "1", "packages": BASE_PACKAGES,
        "add-files": [["vmlinuz", "/usr/lib/modules/6.1.0-test/vmlinuz"]],
    }, extra_sources=[layer_repo.source_line()])
    return compose_ok(tf, top / "repo", compose_cachedir, top / "work")


@pytest.fixture
def sysroot(tmp_path: Path, layer_tree: ComposedTree) -> Iterator[Path]:
    root = tmp_path / "sysroot"
    proc = subprocess.run([*CLI, "admin", "init", str(root), "--repo", str(layer_tree.repo),
                           "--ref", REF], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    yield root
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)
