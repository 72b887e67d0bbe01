"""``db list``/``db diff`` against a sysroot's deployments, and two transactions at once."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import KARGS, REF, Trees
from .lib import APT_OSTREE, ENV, aot, aot_ok, check_sysroot

pytestmark = [pytest.mark.root, pytest.mark.network]


def test_db_against_deployments(sysroot: Path, trees: Trees) -> None:
    trees.publish(REF, trees.v2)
    aot_ok(sysroot, "upgrade")
    check_sysroot(sysroot, checksums=[trees.v2, trees.v1])

    # No revision: from the rollback deployment (nothing is booted) to the default one.
    proc = aot_ok(sysroot, "db", "diff")
    assert f"from: rollback deployment 1 ({trees.v1})" in proc.stdout
    assert f"to:   default deployment 0 ({trees.v2})" in proc.stdout
    assert "Upgraded:\n  aotd-tool 1.0 -> 2.0\n" in proc.stdout
    assert "Added:\n  aotd-extra 1.0 all\n" in proc.stdout
    data = json.loads(aot_ok(sysroot, "db", "diff", "--json").stdout)
    assert (data["from"], data["to"]) == (trees.v1, trees.v2)
    assert [c["name"] for c in data["upgraded"]] == ["aotd-tool"]
    assert [p["name"] for p in data["added"]] == ["aotd-extra"]
    assert data["removed"] == [] and data["downgraded"] == []

    # One revision: from the default deployment to it (a version, resolved in the sysroot's repo).
    data = json.loads(aot_ok(sysroot, "db", "diff", "1.0", "--json").stdout)
    assert (data["from"], data["to"]) == (trees.v2, trees.v1)
    assert [c["name"] for c in data["downgraded"]] == ["aotd-tool"]
    assert [p["name"] for p in data["removed"]] == ["aotd-extra"]
    # Two: as with --repo.
    data = json.loads(aot_ok(sysroot, "db", "diff", trees.v1, trees.v2, "--json").stdout)
    assert (data["from"], data["to"]) == (trees.v1, trees.v2)

    # db list: the default deployment, a prefix without a revision, a revision with a prefix.
    proc = aot_ok(sysroot, "db", "list")
    assert f"default deployment 0 ({trees.v2})" in proc.stdout
    assert "  aotd-tool 2.0 all\n" in proc.stdout and "  base-files " in proc.stdout
    data = json.loads(aot_ok(sysroot, "db", "list", "aotd-", "--json").stdout)
    assert data["commit"] == trees.v2
    assert [(p["name"], p["version"]) for p in data["packages"]] == [("aotd-extra", "1.0"),
                                                                    ("aotd-tool", "2.0")]
    data = json.loads(aot_ok(sysroot, "db", "list", trees.v1, "aotd-", "--json").stdout)
    assert (data["commit"], [p["version"] for p in data["packages"]]) == (trees.v1, ["1.0"])

    # --repo still works, and still needs its revisions.
    repo = sysroot / "ostree/repo"
    data = json.loads(aot_ok(None, "db", "diff", trees.v1, trees.v2, "--repo", repo, "--json").stdout)
    assert [c["name"] for c in data["upgraded"]] == ["aotd-tool"]
    assert aot(None, "db", "diff", "--repo", repo).returncode == 2
    assert aot(None, "db", "list", "--repo", repo).returncode == 2


def _start(sysroot: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*APT_OSTREE, "--sysroot", str(sysroot), *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env={**os.environ, **ENV})


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err
    return proc.returncode, out + err


def test_two_kargs_at_once(sysroot: Path) -> None:
    """Both complete (one waits for the lock) and neither change is lost."""
    procs = [_start(sysroot, "kargs", "--append", f"concurrent={i}") for i in range(2)]
    results = [_finish(p) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    admin = check_sysroot(sysroot)
    default = aot_ok(sysroot, "kargs").stdout.split()
    assert default[:len(KARGS)] == list(KARGS)
    assert sorted(default[len(KARGS):]) == ["concurrent=0", "concurrent=1"], default
    # The rollback is the first transaction's deployment, not the one both started from.
    assert len(admin) == 2
    rollback = json.loads(aot_ok(sysroot, "status", "--json").stdout)["deployments"][1]
    assert len(rollback["kernel-arguments"]) == len(KARGS) + 1


def test_upgrade_and_kargs_at_once(sysroot: Path, trees: Trees) -> None:
    trees.publish(REF, trees.v2)
    procs = [_start(sysroot, "upgrade"), _start(sysroot, "kargs", "--append", "during-upgrade")]
    results = [_finish(p) for p in procs]
    assert [rc for rc, _ in results] == [0, 0], results
    admin = check_sysroot(sysroot)
    assert admin[0].checksum == trees.v2
    assert aot_ok(sysroot, "kargs").stdout.split() == [*KARGS, "during-upgrade"]
