"""Fixtures for the deployment tests: three real composes and directory sysroots.

One session composes, through the real CLI, ``v1`` and ``v2`` of one ref and
a second ref for rebase, into a repository that plays the update server.
``v2`` differs from ``v1`` the way real updates do: its version, a kernel, a
default file in /etc, a file new in /etc and its package set (one test package
upgraded, one added).  The ref is then moved back to ``v1``; a test "publishes"
``v2`` by moving it forward (``ostree reset``), which is what a server does
when it composes a new tree.

Every sysroot is a hardlinked copy (``cp -al``) of one template made with
``apt-ostree admin init``: a fraction of a second instead of a pull and a
deploy.  libostree never writes a file of a sysroot in place (objects are
immutable, origins, refs and boot entries are replaced by rename), so the
copies cannot change the template; tests that edit a file replace it too
(``lib.replace_file``), and the session checks the template at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from apt_ostree.compose.treefile import host_sources

from .lib import aot_ok, fsck, run, snapshot

REF = "aot/x86_64/deploy"
OTHER_REF = "aot/x86_64/deploy-other"
OSNAME = "debian"  # admin init's default: the tree's os-release ID
KARGS = ("quiet", "console=ttyS0")
TOOLS = ("ostree", "mmdebstrap", "dpkg-deb", "apt-ftparchive", "setpriv", "cp", "du")
CACHE = Path(os.environ.get("APT_OSTREE_DEPLOY_TEST_CACHE", "/var/cache/apt-ostree/test-cache-deploy"))


def probe() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        return f"not installed: {', '.join(missing)}"
    if subprocess.run(["ostree", "--version"], capture_output=True).returncode != 0:
        return "ostree does not run"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None:
        why = probe()
        if why:
            pytest.skip(f"deployment tests: {why}")


# ---- packages and trees ------------------------------------------------------------


def kernel_files(files: Path, kver: str) -> list[list[str]]:
    (files / f"vmlinuz-{kver}").write_text(f"text kernel {kver}\n")
    (files / f"initramfs-{kver}.img").write_text(f"text initramfs {kver}\n")
    return [[f"files/vmlinuz-{kver}", f"/usr/lib/modules/{kver}/vmlinuz"],
            [f"files/initramfs-{kver}.img", f"/usr/lib/modules/{kver}/initramfs.img"]]


def etc_files(files: Path, name: str, contents: dict[str, str]) -> list[list[str]]:
    out = []
    for fname, text in contents.items():
        src = files / f"{name}-{fname}"
        src.write_text(text)
        out.append([f"files/{src.name}", f"/etc/aot-deploy/{fname}"])
    return out


@dataclass(frozen=True)
class Trees:
    """The update server: a repository with v1, v2 of ``REF`` and ``OTHER_REF``."""

    repo: Path
    v1: str
    v2: str
    other: str

    def publish(self, ref: str, commit: str) -> None:
        """Point ``ref`` on the server at ``commit`` (a compose that made it)."""
        run(["ostree", "reset", f"--repo={self.repo}", ref, commit], check=True)

    def reset(self) -> None:
        self.publish(REF, self.v1)
        self.publish(OTHER_REF, self.other)


def _debs(top: Path) -> tuple[str, str]:
    """Flat apt repositories: v1 has aotd-tool 1.0; v2 has aotd-tool 2.0 and aotd-extra."""
    from testlib.debs import DebFile, DebSpec, build_flat_repo

    def tool(version: str) -> DebSpec:
        return DebSpec(name="aotd-tool", version=version, files={
            "/usr/bin/aotd-tool": DebFile(f"#!/bin/sh\necho aotd-tool {version}\n", 0o755),
            "/etc/aotd-tool/tool.conf": f"version = {version}\n"})

    extra = DebSpec(name="aotd-extra", files={"/usr/share/aotd-extra/extra.txt": "extra\n"})
    v1 = build_flat_repo(top / "debs-v1", [tool("1.0")], top / "build")
    v2 = build_flat_repo(top / "debs-v2", [tool("2.0"), extra], top / "build")
    return v1.source_line(), v2.source_line()


def _compose(treefile: Path, repo: Path, data: dict[str, object]) -> str:
    treefile.write_text(yaml.safe_dump(data, sort_keys=False))
    commitid = treefile.with_suffix(".commitid")
    work = treefile.with_suffix(".work")
    work.mkdir()
    aot_ok(None, "compose", "tree", treefile, "--repo", repo, "--cachedir", CACHE,
           "--workdir", work, "--write-commitid-to", commitid)
    shutil.rmtree(work, ignore_errors=True)
    return commitid.read_text().strip()


@pytest.fixture(scope="session")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Trees:
    # For working on these tests: APT_OSTREE_DEPLOY_TEST_TREES=DIR composes into DIR once
    # and reuses it in later runs (remove DIR when the compose code changes).
    keep = os.environ.get("APT_OSTREE_DEPLOY_TEST_TREES")
    if keep and (Path(keep) / "trees.json").is_file():
        saved = json.loads((Path(keep) / "trees.json").read_text())
        t = Trees(Path(saved["repo"]), saved["v1"], saved["v2"], saved["other"])
        t.reset()
        return t
    top = Path(keep) if keep else tmp_path_factory.mktemp("deploy-trees")
    remove_tree(top)
    top.mkdir(parents=True)
    files = top / "files"
    files.mkdir()
    CACHE.mkdir(parents=True, exist_ok=True)
    src_v1, src_v2 = _debs(top)
    repo = top / "server"
    # bare-user: what a build server keeps; committing it is faster than archive mode.
    run(["ostree", "init", f"--repo={repo}", "--mode=bare-user"], check=True)
    sources = host_sources()
    v1 = _compose(top / "v1.yaml", repo, {
        "ref": REF, "version": "1.0", "sources": [*sources, src_v1], "packages": ["aotd-tool"],
        "add-files": [*kernel_files(files, "6.1.0-aot1"),
                      *etc_files(files, "v1", {"admin.conf": "admin default 1\n",
                                               "follow.conf": "follow 1\n",
                                               "deleted.conf": "deleted 1\n"})]})
    v2 = _compose(top / "v2.yaml", repo, {
        "ref": REF, "version": "2.0", "sources": [*sources, src_v2],
        "packages": ["aotd-tool", "aotd-extra"],
        "add-files": [*kernel_files(files, "6.1.0-aot2"),
                      *etc_files(files, "v2", {"admin.conf": "admin default 2\n",
                                               "follow.conf": "follow 2\n",
                                               "deleted.conf": "deleted 2\n",
                                               "new.conf": "new in 2\n"})]})
    (files / "other.txt").write_text("the other tree\n")
    other = _compose(top / "other.yaml", repo, {
        "ref": OTHER_REF, "version": "other-1", "sources": sources,
        "add-files": [*kernel_files(files, "6.1.0-aot3"),
                      ["files/other.txt", "/usr/share/aot-deploy/other.txt"]]})
    t = Trees(repo, v1, v2, other)
    t.reset()
    (top / "trees.json").write_text(json.dumps({"repo": str(repo), "v1": v1, "v2": v2, "other": other}))
    return t


# ---- sysroots -----------------------------------------------------------------------


def remove_tree(path: Path) -> None:
    if path.exists():
        try:
            shutil.rmtree(path)
        except OSError:  # an immutable deployment (run without mutable-deployments)
            subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def template_sysroot(trees: Trees) -> Iterator[Path]:
    """``apt-ostree admin init`` of v1, once; tests get copies."""
    top = Path(tempfile.mkdtemp(prefix="aot-deploy-", dir="/var/tmp"))
    top.chmod(0o755)  # the unprivileged tests read copies made beside it
    path = top / "template"
    trees.reset()
    try:
        proc = aot_ok(None, "admin", "init", path, "--repo", trees.repo, "--ref", REF,
                      *[f"--karg={k}" for k in KARGS])
        assert trees.v1 in proc.stdout
    except BaseException:
        remove_tree(top)
        raise
    before = snapshot(path)
    yield path
    assert snapshot(path) == before, "a test changed the template sysroot through a hardlink"
    fsck(path)
    remove_tree(top)


@pytest.fixture(scope="session")
def make_sysroot(template_sysroot: Path, trees: Trees) -> Iterator[Callable[[], Path]]:
    """Factory: a fresh hardlinked copy of the template (v1 deployed, server at v1)."""
    made: list[Path] = []

    def make() -> Path:
        trees.reset()
        path = template_sysroot.parent / f"sysroot-{len(made)}"
        remove_tree(path)
        subprocess.run(["cp", "-al", str(template_sysroot), str(path)], check=True)
        path.chmod(0o755)
        made.append(path)
        return path

    yield make
    for path in made:
        remove_tree(path)


@pytest.fixture
def sysroot(make_sysroot: Callable[[], Path]) -> Iterator[Path]:
    path = make_sysroot()
    yield path
    remove_tree(path)

