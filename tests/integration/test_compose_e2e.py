"""End to end: a real minbase tree plus a real package from this machine's apt sources.

The commit is checked out and booted far enough to matter: /var is rebuilt
from the commit's tmpfiles.d (as at boot) and the package's binary runs inside
the tree under bubblewrap.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from testlib.compose import compose_ok
from testlib.tools import OstreeCli, write_treefile

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.slow]


def in_tree(root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bwrap", "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
         "--unshare-all", "--die-with-parent", "--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin", *argv],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_real_package_runs_in_the_composed_tree(tmp_path: Path, compose_cachedir: Path) -> None:
    treefile = write_treefile(tmp_path / "hello.yaml", {
        "ref": "debian/bookworm/x86_64/hello",
        "packages": ["hello"],
    })
    tree = compose_ok(treefile, tmp_path / "repo", compose_cachedir, tmp_path / "work")
    ostree = OstreeCli(tree.repo)
    ostree.fsck()
    assert "('hello', " in ostree.metadata(tree.commit, "apt-ostree.packages")

    root = ostree.checkout(tree.commit, tmp_path / "checkout")
    assert not (root / "etc").exists()
    # What a deployment does: /etc from /usr/etc, then /var from tmpfiles.d at boot.
    subprocess.run(["cp", "-a", root / "usr/etc", root / "etc"], check=True)
    if shutil.which("systemd-tmpfiles"):
        subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", "--boot",
                        f"{root}/usr/lib/tmpfiles.d/apt-ostree-autovar.conf"],
                       check=True, capture_output=True)

    proc = in_tree(root, "/usr/bin/hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, world!\n"

    if (root / "var/lib/dpkg").is_symlink():
        # dpkg inside the tree finds its database through /var/lib/dpkg -> /usr/share/dpkg/database.
        proc = in_tree(root, "dpkg-query", "-W", "-f=${Package} ${Status}\n", "hello")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "hello install ok installed\n"
