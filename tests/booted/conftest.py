"""Fixtures of the booted-system tests: a tree that can run apt-ostree, booted in namespaces.

``booted_tree`` (one compose per session): minbase + apt-ostree's runtime
dependencies + the layering tests' base packages, with the layering test
repository in its apt sources.  ``machine``: a fresh sysroot with that tree
deployed, booted (testlib.booted); the tree's repository and the test apt
repository are visible inside at their host paths.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from layer.lib import BASE_PACKAGES as LAYER_BASE_PACKAGES
from layer.lib import CLI, ENV
from testlib.booted import BootedSystem
from testlib.compose import ComposedTree, compose_deployable
from testlib.debs import FlatRepo

REF = "test/booted"
# What apt-ostree needs at run time (its Debian package's dependencies), and
# the tools the harness runs inside: systemd-tmpfiles at boot, ostree admin
# finalize-staged at shutdown, dbus-daemon for the daemon test.
RUNTIME_PACKAGES = ["python3", "python3-gi", "gir1.2-ostree-1.0", "python3-apt", "python3-dasbus",
                    "python3-yaml", "bubblewrap", "ostree", "systemd-standalone-tmpfiles",
                    "dbus-daemon"]


@pytest.fixture(scope="session")
def booted_tree(tmp_path_factory: pytest.TempPathFactory, layer_repo: FlatRepo,
                compose_cachedir: Path) -> ComposedTree:
    return compose_deployable(tmp_path_factory.mktemp("booted-tree"), REF,
                              RUNTIME_PACKAGES + LAYER_BASE_PACKAGES, [layer_repo.source_line()],
                              compose_cachedir)


@pytest.fixture
def machine(tmp_path: Path, booted_tree: ComposedTree, layer_repo: FlatRepo) -> Iterator[BootedSystem]:
    sysroot = tmp_path / "sysroot"
    proc = subprocess.run([*CLI, "admin", "init", str(sysroot), "--repo", str(booted_tree.repo),
                           "--ref", REF], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    system = BootedSystem(sysroot, tmp_path / "machine", binds=[booted_tree.repo, layer_repo.path])
    system.boot()
    yield system
    system.crash()
    subprocess.run(["chattr", "-R", "-i", str(sysroot)], capture_output=True)
