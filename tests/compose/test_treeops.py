"""Unit tests for the treefile's changes to a tree: paths stay inside the tree.

A Debian tree has absolute symlinks (/var/run -> /run, /var/lock -> /run/lock):
add-files and remove-files must follow them inside the tree, never to the
build host's /run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from apt_ostree.compose.treefile import AddFile, Treefile
from apt_ostree.compose.treeops import _glob_in_root, _resolve_in_root, add_files, remove_files
from apt_ostree.errors import LayoutError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for d in ("run/lock", "usr/bin", "usr/share/doc/a", "usr/share/doc/b", "var/lib", "etc"):
        (root / d).mkdir(parents=True)
    (root / "var/run").symlink_to("/run")               # absolute, as in Debian
    (root / "var/lock").symlink_to("/run/lock")
    (root / "bin").symlink_to("usr/bin")                # relative (merged /usr)
    (root / "run/pidfile").write_text("1\n")
    (root / "usr/share/doc/a/README").write_text("a\n")
    (root / "usr/share/doc/b/README").write_text("b\n")
    (root / "usr/share/doc/.hidden").write_text("h\n")
    (root / "etc/loop").symlink_to("/etc/loop")
    return root


def test_resolve_follows_absolute_links_inside_the_tree(tree: Path) -> None:
    assert _resolve_in_root(tree, "/var/run/pidfile") == tree / "run/pidfile"
    assert _resolve_in_root(tree, "/var/lock/x") == tree / "run/lock/x"
    assert _resolve_in_root(tree, "/bin/sh") == tree / "usr/bin/sh"
    assert _resolve_in_root(tree, "/var/run", follow_last=False) == tree / "var/run"
    assert _resolve_in_root(tree, "/../../etc") == tree / "etc"


def test_resolve_refuses_symlink_loops(tree: Path) -> None:
    with pytest.raises(LayoutError, match="too many levels"):
        _resolve_in_root(tree, "/etc/loop/x")


def test_glob_in_root(tree: Path) -> None:
    assert _glob_in_root(tree, "/usr/share/doc/*/README") == [
        tree / "usr/share/doc/a/README", tree / "usr/share/doc/b/README"]
    assert _glob_in_root(tree, "/usr/share/doc/*") == [tree / "usr/share/doc/a", tree / "usr/share/doc/b"]
    assert _glob_in_root(tree, "/usr/share/doc/.h*") == [tree / "usr/share/doc/.hidden"]
    assert _glob_in_root(tree, "/var/run/*") == [tree / "run/lock", tree / "run/pidfile"]
    assert _glob_in_root(tree, "/var/run") == [tree / "var/run"]      # the link itself
    assert _glob_in_root(tree, "/nothing/*") == []


def test_remove_files_stays_in_the_tree(tree: Path) -> None:
    tf = Treefile(path=tree / "t.yaml", ref="x", remove_files=("/var/run/*", "/usr/share/doc/a"))
    remove_files(tree, tf)
    assert sorted(os.listdir(tree / "run")) == []
    assert not (tree / "usr/share/doc/a").exists()
    assert (tree / "usr/share/doc/b/README").exists()
    assert (tree / "var/run").is_symlink()


@pytest.mark.root
def test_add_files_through_an_absolute_link(tree: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_text("added\n")
    add_files(tree, Treefile(path=tree / "t.yaml", ref="x", add_files=(AddFile(src, "/var/run/added.txt"),)))
    assert (tree / "run/added.txt").read_text() == "added\n"
    assert not Path("/run/added.txt").exists()


@pytest.mark.root
def test_add_files_onto_a_directory(tree: Path, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_text("added\n")
    tf = Treefile(path=tree / "t.yaml", ref="x", add_files=(AddFile(src, "/usr/share/doc/a"),))
    with pytest.raises(LayoutError, match="is a directory"):
        add_files(tree, tf)
