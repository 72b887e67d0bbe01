"""/etc three-way merge across an upgrade, and the disk cost of a new deployment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .conftest import OSNAME, REF, Trees
from .lib import aot_ok, check_sysroot, deployment_dir, replace_file, run

pytestmark = [pytest.mark.root, pytest.mark.network]


def test_etc_three_way_merge(sysroot: Path, trees: Trees) -> None:
    [d1] = check_sysroot(sysroot, checksums=[trees.v1], with_fsck=False)
    etc1 = deployment_dir(sysroot, d1) / "etc"
    assert (etc1 / "aot-deploy/admin.conf").read_text() == "admin default 1\n"
    # The administrator changes one file, adds one and deletes one.
    replace_file(etc1 / "aot-deploy/admin.conf", "changed by the administrator\n")
    (etc1 / "aot-deploy/local.conf").write_text("only on this machine\n")
    (etc1 / "aot-deploy/deleted.conf").unlink()

    trees.publish(REF, trees.v2)
    aot_ok(sysroot, "upgrade")
    d2, _ = check_sysroot(sysroot, checksums=[trees.v2, trees.v1])
    etc2 = deployment_dir(sysroot, d2) / "etc"
    assert (etc2 / "aot-deploy/admin.conf").read_text() == "changed by the administrator\n"
    assert (etc2 / "aot-deploy/local.conf").read_text() == "only on this machine\n"
    assert not (etc2 / "aot-deploy/deleted.conf").exists(), "a deletion must survive too"
    # Untouched defaults follow the new tree; files new in the tree appear.
    assert (etc2 / "aot-deploy/follow.conf").read_text() == "follow 2\n"
    assert (etc2 / "aot-deploy/new.conf").read_text() == "new in 2\n"
    assert (etc2 / "aotd-tool/tool.conf").read_text() == "version = 2.0\n"  # a package conffile
    # The new tree's defaults are in /usr/etc; the rollback keeps its own /etc.
    usr_etc2 = deployment_dir(sysroot, d2) / "usr/etc"
    assert (usr_etc2 / "aot-deploy/admin.conf").read_text() == "admin default 2\n"
    assert (etc1 / "aot-deploy/admin.conf").read_text() == "changed by the administrator\n"
    assert not (etc1 / "aot-deploy/new.conf").exists()


def _du(path: Path) -> int:
    """Bytes on disk under ``path``, each hardlinked inode counted once (like du)."""
    out = run(["du", "-s", "-B1", str(path)], check=True).stdout
    return int(out.split()[0])


def _files(root: Path) -> dict[str, os.stat_result]:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_mode & 0o170000 == 0o100000:
                out[os.path.relpath(os.path.join(dirpath, name), root)] = st
    return out


def test_new_deployment_costs_the_changed_file(sysroot: Path, trees: Trees) -> None:
    """A tree that differs by one file costs that file (plus /etc, directories, metadata)."""
    blob_size = 8 << 20
    extra = sysroot.parent / "onefile-extra"
    (extra / "usr/share/aot-deploy").mkdir(parents=True)
    (extra / "usr/share/aot-deploy/blob.bin").write_bytes(os.urandom(blob_size))
    onefile_ref = f"{REF}-onefile"
    run(["ostree", "commit", f"--repo={trees.repo}", "-b", onefile_ref,
         f"--tree=ref={trees.v1}", f"--tree=dir={extra}",
         "--add-metadata-string=version=1.0-onefile"], check=True)
    subprocess.run(["rm", "-rf", str(extra)], check=True)

    [d1] = check_sysroot(sysroot, checksums=[trees.v1], with_fsck=False)
    tree_size = _du(deployment_dir(sysroot, d1) / "usr")
    before = _du(sysroot)
    aot_ok(sysroot, "rebase", onefile_ref)
    d2, _ = check_sysroot(sysroot, versions=["1.0-onefile", "1.0"])
    cost = _du(sysroot) - before

    new_dir = deployment_dir(sysroot, d2)
    etc_and_dirs = _du(new_dir / "etc") + sum(
        4096 for _, dirs, _ in os.walk(new_dir / "usr") for _ in dirs)
    assert blob_size <= cost <= blob_size + etc_and_dirs + (2 << 20), \
        f"cost {cost}, blob {blob_size}, /etc + directories {etc_and_dirs}, tree {tree_size}"
    assert cost < tree_size / 4, f"a new deployment cost {cost} bytes of a {tree_size}-byte tree"

    # Every file of /usr is the repository's object, hardlinked: the same inode as in the
    # previous deployment, except the one file that changed.  (libostree copies empty files:
    # hardlinking them would only pile up link counts.)
    old = _files(deployment_dir(sysroot, d1) / "usr")
    new = _files(new_dir / "usr")
    assert set(new) - set(old) == {"share/aot-deploy/blob.bin"}
    nonempty = [p for p, st in new.items() if st.st_size > 0]
    assert len(nonempty) > 0.95 * len(new)
    assert [p for p in nonempty if new[p].st_nlink < 2] == []
    assert [p for p in nonempty if p in old and old[p].st_ino != new[p].st_ino] == []
    assert f"{OSNAME}:{onefile_ref}" == d2.origin
