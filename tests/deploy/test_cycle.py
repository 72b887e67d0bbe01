"""The full cycle on one sysroot: init v1, upgrade to v2, rollback twice, deploy by version
and by checksum, rebase, cleanup; after every step the real ostree tools agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import KARGS, OSNAME, OTHER_REF, REF, Trees
from .lib import aot, aot_ok, assert_error, check_sysroot, deployment_dir, snapshot, status_json

pytestmark = [pytest.mark.root, pytest.mark.network]

K = list(KARGS)


def test_full_cycle(sysroot: Path, trees: Trees) -> None:
    v1, v2, other = trees.v1, trees.v2, trees.other
    [d] = check_sysroot(sysroot, versions=["1.0"], checksums=[v1], kargs=[K])
    assert d.osname == OSNAME and d.origin == f"{OSNAME}:{REF}"

    # Nothing new on the server.
    before = snapshot(sysroot)
    for args in (["--check"], ["--preview"], []):
        proc = aot(sysroot, "upgrade", *args)
        assert proc.returncode == 77, proc
        assert "No upgrade available" in proc.stdout + proc.stderr
        assert "error" not in proc.stderr.lower()
    assert snapshot(sysroot) == before

    trees.publish(REF, v2)
    proc = aot_ok(sysroot, "upgrade", "--check")
    assert f"Update available: {v2} (version 2.0)" in proc.stdout
    assert "aotd-tool" not in proc.stdout
    proc = aot_ok(sysroot, "upgrade", "--preview")
    assert f"Update available: {v2} (version 2.0)" in proc.stdout
    assert "Upgraded:\n  aotd-tool 1.0 -> 2.0\n" in proc.stdout
    assert "Added:\n  aotd-extra 1.0\n" in proc.stdout
    assert "Removed" not in proc.stdout
    assert snapshot(sysroot)[:4] == before[:4], "--check/--preview must not deploy"
    check_sysroot(sysroot, versions=["1.0"], checksums=[v1], kargs=[K])

    proc = aot_ok(sysroot, "upgrade")
    assert f"Upgraded to {v2} (version 2.0)" in proc.stdout
    assert "aotd-tool 1.0 -> 2.0" in proc.stdout
    new, old = check_sysroot(sysroot, versions=["2.0", "1.0"], checksums=[v2, v1], kargs=[K, K])
    assert deployment_dir(sysroot, old).is_dir() and deployment_dir(sysroot, new).is_dir()
    data = status_json(sysroot)
    assert data["transaction"] is None
    assert [d["base-checksum"] for d in data["deployments"]] == [v2, v1]
    assert [d["origin"] for d in data["deployments"]] == [f"{OSNAME}:{REF}"] * 2
    assert data["deployments"][0]["timestamp"] >= data["deployments"][1]["timestamp"] > 0
    human = aot_ok(sysroot, "status").stdout
    assert human.index("Version: 2.0") < human.index("Version: 1.0")
    assert f"{OSNAME}:{REF} (default)" in human

    before = snapshot(sysroot)
    proc = aot(sysroot, "upgrade")
    assert proc.returncode == 77 and "No upgrade available" in proc.stdout + proc.stderr
    assert snapshot(sysroot) == before

    aot_ok(sysroot, "rollback")
    check_sysroot(sysroot, versions=["1.0", "2.0"], checksums=[v1, v2], kargs=[K, K])
    aot_ok(sysroot, "rollback")
    check_sysroot(sysroot, versions=["2.0", "1.0"], checksums=[v2, v1], kargs=[K, K])

    proc = aot_ok(sysroot, "deploy", "1.0")
    assert v1 in proc.stdout
    check_sysroot(sysroot, versions=["1.0", "2.0"], checksums=[v1, v2], kargs=[K, K])
    assert status_json(sysroot)["deployments"][0]["override-commit"] == v1

    proc = aot_ok(sysroot, "deploy", v2[:12])
    assert v2 in proc.stdout
    check_sysroot(sysroot, versions=["2.0", "1.0"], checksums=[v2, v1], kargs=[K, K])

    before = snapshot(sysroot)
    proc = aot(sysroot, "deploy", "2.0")
    assert proc.returncode == 77 and "already the default deployment" in proc.stderr, proc
    assert snapshot(sysroot) == before

    proc = aot_ok(sysroot, "rebase", OTHER_REF)
    assert other in proc.stdout
    rebased, _ = check_sysroot(sysroot, versions=["other-1", "2.0"], checksums=[other, v2],
                               kargs=[K, K])
    assert rebased.origin == f"{OSNAME}:{OTHER_REF}"
    assert (deployment_dir(sysroot, rebased) / "usr/share/aot-deploy/other.txt").is_file()
    assert status_json(sysroot)["deployments"][0]["override-commit"] is None

    proc = aot_ok(sysroot, "cleanup", "-r")
    assert "Removed deployment" in proc.stdout
    [only] = check_sysroot(sysroot, versions=["other-1"], checksums=[other], kargs=[K])
    assert sorted(p.name for p in (sysroot / f"ostree/deploy/{OSNAME}/deploy").iterdir()) == \
        sorted([f"{other}.{only.serial}", f"{other}.{only.serial}.origin"])
    assert len(list((sysroot / "boot/ostree").iterdir())) == 1, "old kernels must be removed"

    # Nothing pending, no layering base refs, no cached metadata: nothing to remove.
    proc = aot_ok(sysroot, "cleanup", "-p", "-b", "-m")
    check_sysroot(sysroot, versions=["other-1"], checksums=[other], kargs=[K])


def test_upgrade_never_goes_back_silently(sysroot: Path, trees: Trees) -> None:
    """The server's ref moved back to an older commit: upgrade refuses unless told."""
    trees.publish(REF, trees.v2)
    aot_ok(sysroot, "upgrade")
    trees.publish(REF, trees.v1)
    before = snapshot(sysroot)
    for args in ([], ["--check"]):
        assert_error(aot(sysroot, "upgrade", *args), "older")
    assert snapshot(sysroot) == before
    aot_ok(sysroot, "upgrade", "--allow-downgrade")
    check_sysroot(sysroot, versions=["1.0", "2.0"], checksums=[trees.v1, trees.v2], kargs=[K, K])
