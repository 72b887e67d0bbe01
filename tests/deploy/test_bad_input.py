"""Bad input: one clear 'error:' line, exit 1, no traceback, and nothing changed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import OSNAME, REF, Trees, remove_tree
from .lib import admin_status, aot, assert_error, check_sysroot, fsck, origin_file, replace_file, snapshot

pytestmark = [pytest.mark.root, pytest.mark.network]


@pytest.fixture(scope="module")
def one(make_sysroot: Callable[[], Path]) -> Iterator[Path]:
    """One sysroot with one deployment (v1), shared: every test must leave it unchanged."""
    path = make_sysroot()
    yield path
    fsck(path)
    remove_tree(path)


@pytest.fixture
def unchanged(one: Path, trees: Trees) -> Iterator[Path]:
    trees.reset()
    before = snapshot(one)
    yield one
    assert snapshot(one) == before, "a failed command changed the sysroot"
    check_sysroot(one, checksums=[trees.v1], with_fsck=False)  # fsck: once, at the end


@pytest.mark.parametrize(("args", "needles"), [
    (["rebase", "no/such/ref"], ["no/such/ref"]),
    (["rebase", f"nosuchremote:{REF}"], ["nosuchremote"]),
    (["deploy", "9.9"], ["9.9"]),
    (["deploy", "0123456789abcdef"], ["0123456789abcdef"]),
    (["rollback"], ["roll back"]),
], ids=["rebase-unknown-ref", "rebase-unknown-remote", "deploy-unknown-version",
        "deploy-unknown-checksum", "rollback-single-deployment"])
def test_bad_request(unchanged: Path, args: list[str], needles: list[str]) -> None:
    assert_error(aot(unchanged, *args), *needles)


def test_unreachable_server(unchanged: Path, trees: Trees) -> None:
    away = trees.repo.with_name(trees.repo.name + ".away")
    trees.repo.rename(away)
    try:
        for args in (["upgrade"], ["upgrade", "--check"], ["rebase", REF], ["deploy", "1.0"]):
            assert_error(aot(unchanged, *args), "cannot pull")
    finally:
        away.rename(trees.repo)


@pytest.mark.parametrize("args", [["status"], ["upgrade"], ["rollback"], ["kargs", "--append", "x"],
                                  ["db", "list"]])
def test_missing_sysroot(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "missing"
    assert_error(aot(missing, *args), str(missing), "no such directory")
    assert not missing.exists()


def test_not_a_sysroot(tmp_path: Path, trees: Trees) -> None:
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", trees.repo):
        for args in (["status"], ["upgrade"], ["cleanup", "-r"]):
            assert_error(aot(path, *args), str(path), "not an OSTree sysroot")
    assert list((tmp_path / "empty").iterdir()) == []
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_error(aot(afile, "status"), "not a directory")


@pytest.mark.parametrize("content", [b"\x00\xff garbage [[[\n", b"garbage\n"], ids=["binary", "text"])
def test_corrupt_origin(unchanged: Path, content: bytes) -> None:
    [d] = admin_status(unchanged)
    origin = origin_file(unchanged, d)
    good = origin.read_bytes()
    try:
        replace_file(origin, content)
        for args in (["upgrade"], ["status"], ["kargs", "--append", "x"], ["deploy", "1.0"]):
            assert_error(aot(unchanged, *args), origin.name)
    finally:
        replace_file(origin, good)


def test_origin_without_refspec(unchanged: Path) -> None:
    [d] = admin_status(unchanged)
    origin = origin_file(unchanged, d)
    good = origin.read_bytes()
    try:
        replace_file(origin, "[origin]\nsomething=else\n")
        for args in (["upgrade"], ["rebase", REF], ["deploy", "1.0"]):
            assert_error(aot(unchanged, *args), "refspec")
        proc = aot(unchanged, "status")  # status still shows what there is
        assert proc.returncode == 0 and "names no refspec" in proc.stdout, proc
    finally:
        replace_file(origin, good)


@pytest.mark.parametrize("args", [
    ["upgrade"], ["upgrade", "--check"], ["deploy", "1.0"], ["rebase", REF], ["rollback"],
    ["cleanup", "-r"], ["kargs", "--append", "x"], ["pin", "0"], ["unpin", "0"],
])
def test_not_root(unchanged: Path, args: list[str]) -> None:
    assert_error(aot(unchanged, *args, as_nobody=True), "root")


def test_not_root_can_read_status(unchanged: Path) -> None:
    proc = aot(unchanged, "status", as_nobody=True)
    assert proc.returncode == 0, proc.stderr
    assert f"{OSNAME}:{REF}" in proc.stdout
    assert aot(unchanged, "kargs", as_nobody=True).returncode == 0


def test_not_root_unreadable_sysroot(unchanged: Path) -> None:
    unchanged.chmod(0o700)
    try:
        for args in (["status"], ["upgrade"], ["kargs", "--append", "x"]):
            assert_error(aot(unchanged, *args, as_nobody=True), "permission denied")
    finally:
        unchanged.chmod(0o755)


def test_admin_init_bad_input(tmp_path: Path, trees: Trees, unchanged: Path) -> None:
    # An unknown ref: nothing left behind.
    target = tmp_path / "new"
    assert_error(aot(None, "admin", "init", target, "--repo", trees.repo, "--ref", "no/such/ref"),
                 "no/such/ref")
    assert not (target / "ostree").exists() and not (target / "boot").exists()
    # Not a repository.
    assert_error(aot(None, "admin", "init", target, "--repo", tmp_path, "--ref", REF),
                 "not an OSTree repository")
    # An existing sysroot is not overwritten.
    assert_error(aot(None, "admin", "init", unchanged, "--repo", trees.repo, "--ref", REF),
                 "already")
    # Not root.
    assert_error(aot(None, "admin", "init", target, "--repo", trees.repo, "--ref", REF,
                     as_nobody=True), "root")


def test_admin_init_os_name(tmp_path: Path, trees: Trees) -> None:
    target = tmp_path / "named"
    proc = aot(None, "admin", "init", target, "--repo", trees.repo, "--ref", REF, "--os", "aotos")
    assert proc.returncode == 0, proc.stderr
    try:
        [d] = check_sysroot(target, checksums=[trees.v1], kargs=[[]])
        assert d.osname == "aotos" and d.origin == f"aotos:{REF}"
    finally:
        remove_tree(target)
