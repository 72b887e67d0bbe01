"""Composing again: no-change detection, --force-nocache, lockfiles, reproducibility,
--dry-run and --print-only, and ``db diff`` between an old and a new commit.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testlib.compose import REPRO_EPOCH, ComposedTree, compose_ok, compose_tree
from testlib.debs import FlatRepo
from testlib.tools import OstreeCli, Treefile, assert_one_error, run_cli, write_treefile
from testlib.trees import base_treefile_data

pytestmark = [pytest.mark.root, pytest.mark.network]


# ---- nothing changed -------------------------------------------------------------


def test_same_inputs_exit_77_and_leave_the_ref(base_tree: ComposedTree, compose_cachedir: Path,
                                                tmp_path: Path) -> None:
    commitid = tmp_path / "commitid"
    proc = compose_tree(base_tree.treefile, base_tree.repo, compose_cachedir,
                        "--workdir", tmp_path / "work", "--write-commitid-to", commitid)
    assert proc.returncode == 77, proc.stderr
    assert "no changes" in proc.stderr.lower()
    assert "error:" not in proc.stderr and "Traceback" not in proc.stderr
    assert base_tree.ostree.rev_parse(base_tree.ref) == base_tree.commit
    assert commitid.read_text().strip() == base_tree.commit
    # Nothing was built: no rootfs left or made in the work directory.
    assert not any((tmp_path / "work").glob("*/rootfs"))


# ---- a second compose from the same inputs: reproducible ---------------------------


@pytest.fixture(scope="module")
def repro_tree(tmp_path_factory: pytest.TempPathFactory, base_tree: ComposedTree,
               compose_cachedir: Path) -> ComposedTree:
    """The base treefile again, into another repository and work directory, with its lockfile."""
    top = tmp_path_factory.mktemp("repro")
    return compose_ok(base_tree.treefile, top / "repo", compose_cachedir, top / "other-work",
                      extra_args=["--lockfile", base_tree.lockfile,
                                  "--add-metadata-string", "aot.extra=from the command line"],
                      env={"SOURCE_DATE_EPOCH": REPRO_EPOCH})


def test_lockfile_composes_the_same_versions(base_tree: ComposedTree, repro_tree: ComposedTree) -> None:
    assert json.loads(repro_tree.lockfile.read_text()) == json.loads(base_tree.lockfile.read_text())
    assert repro_tree.ostree.metadata(repro_tree.commit, "apt-ostree.packages") == \
        base_tree.ostree.metadata(base_tree.commit, "apt-ostree.packages")


def test_reproducible_commit(base_tree: ComposedTree, repro_tree: ComposedTree) -> None:
    if repro_tree.commit != base_tree.commit:
        # Say which files differ: bring the first commit over and diff.
        repro_tree.ostree("pull-local", base_tree.repo, base_tree.commit)
        diff = repro_tree.ostree("diff", base_tree.commit, repro_tree.commit)
        pytest.fail(f"same inputs, different commits:\n{diff[:3000]}")
    repro_tree.ostree.fsck()


def test_force_nocache_makes_a_new_commit(repro_tree: ComposedTree, compose_cachedir: Path,
                                          tmp_path: Path) -> None:
    ostree = repro_tree.ostree
    before = ostree.rev_parse(repro_tree.ref)
    again = compose_ok(repro_tree.treefile, repro_tree.repo, compose_cachedir, tmp_path / "work",
                       extra_args=["--force-nocache"], env={"SOURCE_DATE_EPOCH": REPRO_EPOCH})
    assert again.commit != before
    assert ostree.rev_parse(repro_tree.ref) == again.commit
    assert ostree.rev_parse(f"{again.commit}^") == before
    assert ostree.metadata(again.commit, "version") == "'20250101.1'"
    # Same inputs: the package diff is empty.
    proc = run_cli("db", "diff", before or "", again.commit, "--repo", repro_tree.repo)
    assert proc.returncode == 0, proc.stderr
    assert "No package changes." in proc.stdout
    ostree.fsck()


# ---- the granular flow: install, postprocess, commit ------------------------------------------


def test_granular_flow_gives_the_same_commit(base_tree: ComposedTree, compose_cachedir: Path,
                                             tmp_path: Path) -> None:
    env = {"SOURCE_DATE_EPOCH": REPRO_EPOCH}
    treefile, repo = base_tree.treefile.path, tmp_path / "repo"
    # A relative DESTDIR, as a user would type it.
    proc = run_cli("compose", "install", treefile, "dest", "--cachedir", compose_cachedir,
                   "--lockfile", base_tree.lockfile, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rootfs = tmp_path / "dest/rootfs"
    assert (rootfs / "etc/aot-app/app.conf").is_file()

    proc = run_cli("compose", "commit", treefile, rootfs, "--repo", repo)
    assert_one_error(proc, "not adapted")

    proc = run_cli("compose", "postprocess", rootfs, treefile)
    assert proc.returncode == 0, proc.stderr
    assert not (rootfs / "etc").exists()
    assert (rootfs / "usr/share/aot-postprocess.txt").read_text() == "aot-app 1.0\n"
    assert_one_error(run_cli("compose", "postprocess", rootfs, treefile), "already adapted")

    commitid = tmp_path / "commitid"
    proc = run_cli("compose", "commit", treefile, rootfs, "--repo", repo, "--write-commitid-to", commitid,
                   "--add-metadata-string", "aot.extra=from the command line", env=env)
    assert proc.returncode == 0, proc.stderr
    # The same inputs through the steps give the very commit `compose tree` made.
    assert commitid.read_text().strip() == base_tree.commit
    OstreeCli(repo).fsck()


# ---- composes sharing a cache ---------------------------------------------------------------


def test_composes_sharing_a_cache_take_turns(base_tree: ComposedTree, compose_cachedir: Path) -> None:
    fd = os.open(compose_cachedir / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another compose would
        proc = subprocess.Popen(
            [sys.executable, "-m", "apt_ostree", "compose", "tree", base_tree.treefile.path,
             "--cachedir", compose_cachedir, "--dry-run"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        assert "Waiting for another compose" in proc.stderr.readline()
        assert proc.poll() is None
    finally:
        os.close(fd)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "aot-app\t1.0\tall" in out


# ---- --dry-run, --print-only, lockfiles without committing ---------------------------------


def test_dry_run_prints_the_package_set_and_commits_nothing(base_tree: ComposedTree,
                                                           compose_cachedir: Path,
                                                           tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    proc = compose_tree(base_tree.treefile, repo, compose_cachedir, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert ["aot-app", "1.0", "all"] in rows
    assert ["aot-lib", "1.0", "all"] in rows
    assert any(r[0] == "dpkg" for r in rows)
    lock = json.loads(base_tree.lockfile.read_text())["packages"]
    assert {r[0] for r in rows} == set(lock)
    assert "input hash" in proc.stderr
    assert not repo.exists() or OstreeCli(repo).refs() == []
    # And without --repo at all.
    proc = run_cli("compose", "tree", base_tree.treefile.path, "--cachedir", compose_cachedir, "--dry-run")
    assert proc.returncode == 0, proc.stderr


def test_print_only_prints_the_expanded_treefile(base_tree: ComposedTree) -> None:
    proc = run_cli("compose", "tree", base_tree.treefile.path, "--print-only")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["ref"] == base_tree.ref
    assert data["packages"] == ["aot-app"]
    assert data["variant"] == "minbase"
    assert data["units"] == ["aot-app.service"]
    assert data["default-target"] == "aot-test.target"
    assert data["metadata"] == {"aot.purpose": "integration test", "aot.number": 42}
    # add-files sources are resolved against the treefile.
    assert data["add-files"][0] == [str(base_tree.treefile.path.parent / "files/added.txt"),
                                    "/usr/share/aot-added/added.txt"]
    assert any("file://" in s for s in data["sources"])


# ---- an update: newer aot-app, one more package ------------------------------------------


@pytest.fixture(scope="module")
def updated_treefile(tmp_path_factory: pytest.TempPathFactory, test_apt_repo: FlatRepo,
                     test_apt_repo_update: FlatRepo) -> Treefile:
    top = tmp_path_factory.mktemp("updated-treefile")
    data = base_treefile_data(top / "files")
    data["packages"] = ["aot-app", "aot-extra"]
    return write_treefile(top / "updated.yaml", data,
                          extra_sources=[test_apt_repo.source_line(), test_apt_repo_update.source_line()])


@pytest.fixture(scope="module")
def updated_tree(tmp_path_factory: pytest.TempPathFactory, base_tree: ComposedTree,
                 updated_treefile: Treefile, compose_cachedir: Path) -> ComposedTree:
    """The base commit's history continued with the updated treefile, on the same ref."""
    top = tmp_path_factory.mktemp("updated")
    repo = top / "repo"
    OstreeCli(repo)("init", "--mode=archive")
    OstreeCli(repo)("pull-local", base_tree.repo, base_tree.ref)
    return compose_ok(updated_treefile, repo, compose_cachedir, top / "work",
                      env={"SOURCE_DATE_EPOCH": REPRO_EPOCH})


def test_lockfile_pins_older_versions(updated_treefile: Treefile, base_tree: ComposedTree,
                                      compose_cachedir: Path) -> None:
    """With aot-app 2.0 available, the base lockfile still selects 1.0."""
    proc = run_cli("compose", "tree", updated_treefile.path, "--cachedir", compose_cachedir,
                   "--dry-run", "--lockfile", base_tree.lockfile)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    assert ["aot-app", "1.0", "all"] in rows
    assert ["aot-extra", "1.0", "all"] in rows     # not in the lockfile: resolved freely


def test_update_continues_the_history(updated_tree: ComposedTree, base_tree: ComposedTree) -> None:
    ostree = updated_tree.ostree
    assert ostree.rev_parse(updated_tree.ref) == updated_tree.commit
    assert ostree.rev_parse(f"{updated_tree.ref}^") == base_tree.commit
    assert ostree.metadata(updated_tree.commit, "version") == "'20250101.1'"
    assert ostree.metadata(updated_tree.commit, "apt-ostree.inputhash") != \
        base_tree.ostree.metadata(base_tree.commit, "apt-ostree.inputhash")
    ostree.fsck()


def test_update_has_the_new_content(updated_tree: ComposedTree) -> None:
    ostree = updated_tree.ostree
    assert ostree.cat(updated_tree.commit, "/usr/etc/aot-app/app.conf").endswith("version = 2.0\n")
    assert ostree.cat(updated_tree.commit, "/usr/share/aot-postprocess.txt") == "aot-app 2.0\n"
    assert ostree.cat(updated_tree.commit, "/usr/share/aot-extra/extra.txt") == "extra\n"
    assert ostree.cat(updated_tree.commit, "/usr/share/factory/var/lib/aot-app/state.txt") == \
        "initial state of aot-app 2.0\n"


def test_db_diff(updated_tree: ComposedTree, base_tree: ComposedTree) -> None:
    proc = run_cli("db", "diff", base_tree.commit, updated_tree.ref, "--repo", updated_tree.repo)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert base_tree.commit in lines[0] and updated_tree.commit in lines[1]
    assert lines[2:] == ["Upgraded:", "  aot-app 1.0 -> 2.0", "Added:", "  aot-extra 1.0 all"]


def test_db_diff_json(updated_tree: ComposedTree) -> None:
    proc = run_cli("db", "diff", f"{updated_tree.ref}^", updated_tree.ref,
                   "--repo", updated_tree.repo, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["to"] == updated_tree.commit
    assert data["upgraded"] == [{"name": "aot-app", "architecture": "all",
                                 "previous-version": "1.0", "new-version": "2.0"}]
    assert data["added"] == [{"name": "aot-extra", "version": "1.0", "architecture": "all"}]
    assert data["removed"] == [] and data["downgraded"] == []


def test_db_diff_backwards(updated_tree: ComposedTree, base_tree: ComposedTree) -> None:
    proc = run_cli("db", "diff", updated_tree.commit, base_tree.commit,
                   "--repo", updated_tree.repo, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert [c["name"] for c in data["downgraded"]] == ["aot-app"]
    assert [p["name"] for p in data["removed"]] == ["aot-extra"]
    assert data["added"] == [] and data["upgraded"] == []


def test_db_list_versions_in_history(updated_tree: ComposedTree, base_tree: ComposedTree) -> None:
    for version, commit, app in (("20250101.0", base_tree.commit, "1.0"),
                                 ("20250101.1", updated_tree.commit, "2.0")):
        proc = run_cli("db", "list", version, "aot-app", "--repo", updated_tree.repo, "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["commit"] == commit
        assert data["packages"] == [{"name": "aot-app", "version": app, "architecture": "all"}]
