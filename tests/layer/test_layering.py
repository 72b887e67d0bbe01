"""Package layering on a directory sysroot: install, re-layer on upgrade, uninstall, failures.

One tree (minbase + a text kernel) is composed with the test apt repository
in its sources; layering then resolves against the deployment's own dpkg
database and sources.  Checked with the real ostree CLI, dpkg-query and bwrap.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from testlib.compose import ComposedTree, compose_ok
from testlib.debs import DebFile, DebSpec, FlatRepo
from testlib.tools import write_treefile

pytestmark = [pytest.mark.root, pytest.mark.network]

CLI = [str(Path(__file__).resolve().parents[2] / ".venv/bin/apt-ostree")]
ENV = {**os.environ, "OSTREE_SYSROOT_DEBUG": "mutable-deployments"}
REF = "test/layering"
MARKER = "appended-in-place-by-aot-layer"

LAYER_PACKAGES = [
    DebSpec("aot-layer-dep", files={"/usr/share/aot-layer-dep/data": "dep\n"}),
    DebSpec("aot-layer", depends=("aot-layer-dep",),
            files={"/usr/bin/aot-layer": DebFile("#!/bin/sh\necho layered-ok\n", 0o755),
                   "/etc/aot-layer.conf": "setting=1\n"},
            scripts={"postinst": f"#!/bin/sh\nset -e\necho {MARKER} >> /usr/share/base-files/motd\n"}),
    DebSpec("aot-layer-fail",
            scripts={"postinst": "#!/bin/sh\necho postinst-failure-marker >&2\nexit 3\n"}),
]


def cli(sysroot: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "--sysroot", str(sysroot), *args], capture_output=True,
                          text=True, env=ENV)


def deployments(sysroot: Path) -> list[dict[str, object]]:
    proc = cli(sysroot, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout)["deployments"])


def deploy_dir(sysroot: Path, d: dict[str, object]) -> Path:
    return sysroot / f"ostree/deploy/{d['osname']}/deploy/{d['checksum']}.{d['serial']}"


def ostree(*args: str | Path) -> str:
    proc = subprocess.run(["ostree", *map(str, args)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def layer_repo(make_apt_repo: Callable[[str, Iterable[DebSpec]], FlatRepo]) -> FlatRepo:
    return make_apt_repo("layering", LAYER_PACKAGES)


@pytest.fixture(scope="module")
def layer_tree(tmp_path_factory: pytest.TempPathFactory, layer_repo: FlatRepo,
               compose_cachedir: Path) -> ComposedTree:
    top = tmp_path_factory.mktemp("layer-tree")
    (top / "vmlinuz").write_text("text kernel\n")
    tf = write_treefile(top / "tree.yaml", {
        "ref": REF, "version": "1",
        "add-files": [["vmlinuz", "/usr/lib/modules/6.1.0-test/vmlinuz"]],
    }, extra_sources=[layer_repo.source_line()])
    return compose_ok(tf, top / "repo", compose_cachedir, top / "work")


@pytest.fixture
def sysroot(tmp_path: Path, layer_tree: ComposedTree) -> Path:
    root = tmp_path / "sysroot"
    proc = subprocess.run([*CLI, "admin", "init", str(root), "--repo", str(layer_tree.repo),
                           "--ref", REF], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    yield root
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)


def test_install_layers_package_without_touching_base(sysroot: Path, layer_tree: ComposedTree) -> None:
    proc = cli(sysroot, "install", "aot-layer")
    assert proc.returncode == 0, proc.stderr
    new, old = deployments(sysroot)[:2]
    assert new["requested-packages"] == ["aot-layer"]
    assert set(new["packages"]) == {"aot-layer", "aot-layer-dep"}  # type: ignore[arg-type]
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
