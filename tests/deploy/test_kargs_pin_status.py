"""Kernel arguments, pinning and the shape of ``status --json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import KARGS, REF, Trees
from .lib import admin_status, aot, aot_ok, boot_entries, check_sysroot, fsck, snapshot, status_json

pytestmark = [pytest.mark.root, pytest.mark.network]

# DESIGN.md's contract, plus what apt-ostree adds (rpm-ostree has most of them too).
REQUIRED_KEYS = {"id", "osname", "serial", "checksum", "base-checksum", "version", "timestamp",
                 "origin", "booted", "staged", "pinned", "unlocked", "requested-packages",
                 "packages", "requested-local-packages", "requested-base-removals",
                 "base-removals", "base-local-replacements"}


def test_kargs(sysroot: Path) -> None:
    current = list(KARGS)
    assert aot_ok(sysroot, "kargs").stdout.split() == current

    steps: list[tuple[list[str], list[str]]] = [
        (["--append", "foo=bar", "--append", "foo=baz", "--append", "rw", "--append", 'quoted="a b"'],
         [*current, "foo=bar", "foo=baz", "rw", 'quoted="a b"']),
        (["--delete", "foo=bar", "--replace", "foo=baz=qux"], [*current, "foo=qux", "rw", 'quoted="a b"']),
        (["--replace", "console=tty0", "--append-if-missing", "quiet", "--append-if-missing", "splash"],
         ["quiet", "console=tty0", "foo=qux", "rw", 'quoted="a b"', "splash"]),
        (["--delete-if-present", "rw", "--delete-if-present", "nosuch", "--delete", "quiet",
          "--delete", 'quoted="a b"'],
         ["console=tty0", "foo=qux", "splash"]),
    ]
    for args, expected in steps:
        proc = aot_ok(sysroot, "kargs", *args)
        assert " ".join(expected) in proc.stdout, (args, proc.stdout)
        # The new default has them (ostree= kept); the previous default is the rollback.
        check_sysroot(sysroot, kargs=[expected, current], with_fsck=False)
        assert aot_ok(sysroot, "kargs").stdout.strip() == " ".join(expected)
        for entry in boot_entries(sysroot):
            assert entry.ostree_arg.startswith("/ostree/boot.")
        current = expected
    fsck(sysroot)

    before = snapshot(sysroot)
    for args in (["--append-if-missing", "splash"], ["--delete-if-present", "nosuch"]):
        proc = aot(sysroot, "kargs", *args)
        assert proc.returncode == 77, proc
    proc = aot(sysroot, "kargs", "--delete", "nosuch")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")], proc.stderr
    assert snapshot(sysroot) == before


def test_pin_unpin(sysroot: Path, trees: Trees) -> None:
    trees.publish(REF, trees.v2)
    aot_ok(sysroot, "upgrade")
    proc = aot_ok(sysroot, "pin", "1")
    assert "pinned" in proc.stdout
    admin = check_sysroot(sysroot, checksums=[trees.v2, trees.v1], with_fsck=False)
    assert [d.pinned for d in admin] == [False, True]
    assert [d["pinned"] for d in status_json(sysroot)["deployments"]] == [False, True]
    assert "(pinned)" in aot_ok(sysroot, "status").stdout
    assert aot(sysroot, "pin", "1").returncode == 77

    # A pinned deployment survives new deployments and cleanup.
    aot_ok(sysroot, "kargs", "--append", "pinned-test")
    admin = check_sysroot(sysroot, checksums=[trees.v2, trees.v2, trees.v1], with_fsck=False)
    assert [d.pinned for d in admin] == [False, False, True]
    aot_ok(sysroot, "cleanup", "-r")
    admin = check_sysroot(sysroot, checksums=[trees.v2, trees.v1])
    assert [d.pinned for d in admin] == [False, True]

    aot_ok(sysroot, "unpin", "1")
    assert [d.pinned for d in admin_status(sysroot)] == [False, False]
    assert [d["pinned"] for d in status_json(sysroot)["deployments"]] == [False, False]
    assert aot(sysroot, "unpin", "1").returncode == 77
    aot_ok(sysroot, "cleanup", "-r")
    check_sysroot(sysroot, checksums=[trees.v2])


def test_status_json_shape(sysroot: Path, trees: Trees) -> None:
    trees.publish(REF, trees.v2)
    aot_ok(sysroot, "upgrade")
    data = status_json(sysroot)
    assert "transaction" in data and data["transaction"] is None
    assert len(data["deployments"]) == 2
    for d in data["deployments"]:
        assert set(d) >= REQUIRED_KEYS, REQUIRED_KEYS - set(d)
        assert isinstance(d["serial"], int) and isinstance(d["timestamp"], int)
        assert d["checksum"] == d["base-checksum"]  # nothing layered
        assert d["unlocked"] == "none"
        for key in ("requested-packages", "packages", "requested-local-packages",
                    "requested-base-removals", "base-removals", "base-local-replacements"):
            assert d[key] == [], key
    # -b: only the booted deployment, and a directory sysroot has none.
    booted = json.loads(aot_ok(sysroot, "status", "--json", "-b").stdout)["deployments"]
    assert booted == []
    verbose = aot_ok(sysroot, "status", "-v").stdout
    for d in data["deployments"]:
        assert d["id"] in verbose
    assert " ".join(KARGS) in verbose

