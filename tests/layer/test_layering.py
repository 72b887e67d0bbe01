"""Package layering on a directory sysroot: install, re-layer on upgrade, uninstall, failures.

One tree (minbase + a text kernel) is composed with the test apt repository
in its sources; layering then resolves against the deployment's own dpkg
database and sources.  Checked with the real ostree CLI, dpkg-query and bwrap.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testlib.compose import ComposedTree

from .lib import MARKER, REF, cli, deploy_dir, deployments, ostree

pytestmark = [pytest.mark.root, pytest.mark.network]


def test_install_layers_package_without_touching_base(sysroot: Path, layer_tree: ComposedTree) -> None:
    proc = cli(sysroot, "install", "aot-layer")
    assert proc.returncode == 0, proc.stderr
    new, old = deployments(sysroot)[:2]
    assert new["requested-packages"] == ["aot-layer"]
    assert new["packages"] == ["aot-layer"]  # active requests, as rpm-ostree
    assert new["base-checksum"] == layer_tree.commit != new["checksum"]
    assert old["checksum"] == layer_tree.commit
    root = deploy_dir(sysroot, new)
    # dpkg sees base and layered packages; the program runs in the new deployment.
    q = subprocess.run(["dpkg-query", f"--admindir={root}/usr/share/dpkg/database", "-W",
                        "aot-layer", "aot-layer-dep", "coreutils"], capture_output=True, text=True)
    assert q.returncode == 0 and "aot-layer\t1.0" in q.stdout, q.stdout + q.stderr
    run = subprocess.run(["bwrap", "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev",
                          "/usr/bin/aot-layer"], capture_output=True, text=True)
    assert run.stdout.strip() == "layered-ok", run.stderr
    assert (root / "etc/aot-layer.conf").read_text() == "setting=1\n"
    # The postinst appended in place to a base file: the layered tree has it,
    # the base commit (in both repositories) does not, and fsck is clean.
    assert MARKER in (root / "usr/share/base-files/motd").read_text()
    repo = sysroot / "ostree/repo"
    assert MARKER not in ostree(f"--repo={repo}", "cat", layer_tree.commit, "/usr/share/base-files/motd")
    assert MARKER not in (deploy_dir(sysroot, old) / "usr/share/base-files/motd").read_text()
    assert "no errors found" in ostree("fsck", f"--repo={repo}")
    # No sandbox mount points or /var state leaked into the commit.
    diff = ostree(f"--repo={repo}", "diff", layer_tree.commit, str(new["checksum"]))
    assert "policy-rc.d" not in diff and " /etc" not in diff and " /var" not in diff, diff
    assert " /usr/etc/aot-layer.conf" in diff


def test_upgrade_relayers_on_new_base(sysroot: Path, layer_tree: ComposedTree, tmp_path: Path) -> None:
    assert cli(sysroot, "install", "aot-layer").returncode == 0
    # A new base: the composed tree plus one file, committed on the same ref.
    extra = tmp_path / "extra/usr/share"
    extra.mkdir(parents=True)
    (extra / "v2-marker").write_text("v2\n")
    try:
        ostree(f"--repo={layer_tree.repo}", "commit", "-b", REF, f"--tree=ref={layer_tree.commit}",
               f"--tree=dir={tmp_path / 'extra'}", "--add-metadata-string=version=2")
        v2 = ostree(f"--repo={layer_tree.repo}", "rev-parse", REF).strip()
        proc = cli(sysroot, "upgrade")
        assert proc.returncode == 0, proc.stderr
        new = deployments(sysroot)[0]
        assert new["base-checksum"] == v2
        assert new["requested-packages"] == ["aot-layer"]
        root = deploy_dir(sysroot, new)
        assert (root / "usr/share/v2-marker").exists()
        assert (root / "usr/bin/aot-layer").exists()
        assert "no errors found" in ostree("fsck", f"--repo={sysroot / 'ostree/repo'}")
    finally:
        ostree(f"--repo={layer_tree.repo}", "reset", REF, layer_tree.commit)


def test_uninstall_returns_to_base(sysroot: Path, layer_tree: ComposedTree) -> None:
    assert cli(sysroot, "install", "aot-layer").returncode == 0
    proc = cli(sysroot, "uninstall", "aot-layer")
    assert proc.returncode == 0, proc.stderr
    new = deployments(sysroot)[0]
    assert new["checksum"] == layer_tree.commit
    assert new["requested-packages"] == []
    proc = cli(sysroot, "uninstall", "aot-layer")
    assert proc.returncode == 1 and "not requested" in proc.stderr


@pytest.mark.parametrize(("package", "needle"), [
    ("aot-layer-fail", "postinst-failure-marker"),
    ("no-such-package-here", "no-such-package-here"),
])
def test_failures_change_nothing(sysroot: Path, package: str, needle: str) -> None:
    before = deployments(sysroot)
    proc = cli(sysroot, "install", package)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1].startswith("error:") or "error:" in proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert deployments(sysroot) == before
    assert not [m for m in Path("/proc/mounts").read_text().splitlines() if str(sysroot) in m]
