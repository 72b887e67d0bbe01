"""Layering beyond the basics: local .debs, overrides, implicit replacements, conflicts,
bad .debs, users added by maintainer scripts, the .deb cache, dry runs, inactive
requests, and one real package from this machine's apt sources."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from testlib.compose import ComposedTree
from testlib.debs import DebSpec, FlatRepo, build_deb, build_flat_repo

from .lib import HOST_MARKER, REF, cli, deploy_dir, deployments, dpkg_versions, ostree

pytestmark = [pytest.mark.root, pytest.mark.network]


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def fails(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr
    return proc.stderr


def test_local_deb_survives_upgrade_without_the_file(sysroot: Path, layer_tree: ComposedTree,
                                                      tmp_path: Path) -> None:
    deb = build_deb(DebSpec("aot-local", depends=("aot-layer-dep",),
                            files={"/usr/share/aot-local/f": "local\n"}), tmp_path, tmp_path / "b")
    ok(cli(sysroot, "install", deb))
    d = deployments(sysroot)[0]
    assert [e.split(":")[0] for e in d["requested-local-packages"]] == ["aot-local"]  # type: ignore[union-attr]
    versions = dpkg_versions(deploy_dir(sysroot, d))
    assert "aot-local" in versions and "aot-layer-dep" in versions
    deb.unlink()
    extra = tmp_path / "extra/usr/share"
    extra.mkdir(parents=True)
    (extra / "v2").write_text("v2\n")
    ostree(f"--repo={layer_tree.repo}", "commit", "-b", REF, f"--tree=ref={layer_tree.commit}",
           f"--tree=dir={tmp_path / 'extra'}")
    try:
        ok(cli(sysroot, "upgrade"))
        root = deploy_dir(sysroot, deployments(sysroot)[0])
        assert (root / "usr/share/v2").exists() and (root / "usr/share/aot-local/f").exists()
    finally:
        ostree(f"--repo={layer_tree.repo}", "reset", REF, layer_tree.commit)
    ok(cli(sysroot, "uninstall", "aot-local"))
    assert deployments(sysroot)[0]["requested-local-packages"] == []


def test_override_remove_and_reset(sysroot: Path, layer_tree: ComposedTree) -> None:
    fails(cli(sysroot, "override", "remove", "aot-base-lib"), "aot-base-user")
    ok(cli(sysroot, "override", "remove", "aot-base-extra"))
    d = deployments(sysroot)[0]
    assert d["requested-base-removals"] == ["aot-base-extra"]
    root = deploy_dir(sysroot, d)
    assert "aot-base-extra" not in dpkg_versions(root)
    assert not (root / "usr/share/aot-base-extra").exists()
    assert "aot-base-extra" in dpkg_versions(deploy_dir(sysroot, deployments(sysroot)[1]))
    ok(cli(sysroot, "override", "reset", "aot-base-extra"))
    d = deployments(sysroot)[0]
    assert d["checksum"] == layer_tree.commit and d["requested-base-removals"] == []
    fails(cli(sysroot, "override", "reset", "aot-base-extra"), "no override")


def test_override_replace_by_version_and_by_file(sysroot: Path, tmp_path: Path) -> None:
    ok(cli(sysroot, "override", "replace", "aot-base-extra=1.0"))
    root = deploy_dir(sysroot, deployments(sysroot)[0])
    assert dpkg_versions(root)["aot-base-extra"] == "1.0"
    assert (root / "usr/share/aot-base-extra/v").read_text() == "1.0\n"
    deb = build_deb(DebSpec("aot-base-extra", version="9.0",
                            files={"/usr/share/aot-base-extra/v": "9.0\n"}), tmp_path, tmp_path / "b")
    ok(cli(sysroot, "override", "replace", deb))
    root = deploy_dir(sysroot, deployments(sysroot)[0])
    assert dpkg_versions(root)["aot-base-extra"] == "9.0"
    fails(cli(sysroot, "override", "replace", "aot-base-extra=7.7"), "7.7")


def test_implicit_base_replacement_and_conflicts_are_refused(sysroot: Path, layer_repo: FlatRepo,
                                                            tmp_path: Path) -> None:
    before = deployments(sysroot)
    fails(cli(sysroot, "install", "aot-conflicts"), "aot-base-extra")
    # A newer aot-base-lib and a package that needs it appear in the sources.
    build_flat_repo(layer_repo.path, [
        DebSpec("aot-base-lib", version="2.0", files={"/usr/share/aot-base-lib/lib": "2\n"}),
        DebSpec("aot-needs-new-lib", depends=("aot-base-lib (>= 2.0)",)),
    ], tmp_path / "build")
    err = fails(cli(sysroot, "install", "aot-needs-new-lib"), "aot-base-lib", "override replace")
    assert "1.0" in err and "2.0" in err
    assert deployments(sysroot) == before


def _evil_deb(path: Path, tmp: Path) -> Path:
    """A .deb whose data.tar has a member that escapes the root."""
    tmp.mkdir(parents=True, exist_ok=True)
    control = b"Package: aot-evil\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t.invalid>\n" \
              b"Description: escapes\n x\n"

    def tar_with(members: dict[str, bytes], name: str) -> Path:
        out = tmp / name
        with tarfile.open(out, "w:gz") as t:
            for member, data in members.items():
                info = tarfile.TarInfo(member)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return out

    ctrl = tar_with({"./control": control}, "control.tar.gz")
    data = tar_with({"./../../../aot-escaped": b"x\n"}, "data.tar.gz")
    (tmp / "debian-binary").write_text("2.0\n")
    subprocess.run(["ar", "rc", str(path), str(tmp / "debian-binary"), str(ctrl), str(data)],
                   check=True, cwd=tmp)
    return path


def test_bad_debs_change_nothing(sysroot: Path, tmp_path: Path) -> None:
    before = deployments(sysroot)
    junk = tmp_path / "junk.deb"
    junk.write_bytes(os.urandom(4096))
    fails(cli(sysroot, "install", junk), "not a valid .deb")
    evil = _evil_deb(tmp_path / "evil.deb", tmp_path / "evil")
    fails(cli(sysroot, "install", evil))
    assert not Path("/aot-escaped").exists() and not (sysroot / "aot-escaped").exists()
    assert deployments(sysroot) == before
    assert "no errors found" in ostree("fsck", f"--repo={sysroot / 'ostree/repo'}")


def test_system_user_reaches_edited_etc(sysroot: Path) -> None:
    etc = deploy_dir(sysroot, deployments(sysroot)[0]) / "etc"
    # The administrator adds a system user by hand: the three-way merge keeps these files.
    with open(etc / "passwd", "a") as f:
        f.write("admin1:x:999:999::/nonexistent:/usr/sbin/nologin\n")
    with open(etc / "group", "a") as f:
        f.write("admin1:x:999:\n")
    ok(cli(sysroot, "install", "aot-adduser"))
    new = deploy_dir(sysroot, deployments(sysroot)[0])
    passwd = (new / "etc/passwd").read_text()
    assert "admin1:x:999:" in passwd
    svc = [line for line in passwd.splitlines() if line.startswith("aotsvc:")]
    assert len(svc) == 1 and svc[0].split(":")[2] != "999"
    assert any(line.startswith("aotsvc:") for line in (new / "etc/group").read_text().splitlines())
    tree_passwd = (new / "usr/etc/passwd").read_text()
    assert "aotsvc:" in tree_passwd and "admin1" not in tree_passwd
    # getent inside the new deployment resolves the user.
    proc = subprocess.run(["bwrap", "--ro-bind", str(new), "/", "--proc", "/proc", "--dev", "/dev",
                           "getent", "passwd", "aotsvc"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("aotsvc:")


def test_cache_reused_dry_run_and_inactive(sysroot: Path) -> None:
    before = deployments(sysroot)
    proc = ok(cli(sysroot, "install", "--dry-run", "aot-layer"))
    assert "Would install" in proc.stdout and "aot-layer-dep" in proc.stdout
    assert deployments(sysroot) == before
    fails(cli(sysroot, "install", "aot-base-extra"), "already provided by the base")
    ok(cli(sysroot, "install", "aot-layer"))
    debs = sysroot / "ostree/apt-ostree/cache/debs"
    cached = {p.name: p.stat().st_ino for p in debs.glob("aot-layer*.deb")}
    assert len(cached) == 2
    ok(cli(sysroot, "install", "--allow-inactive", "aot-base-extra"))
    d = deployments(sysroot)[0]
    assert d["requested-packages"] == ["aot-layer", "aot-base-extra"]
    assert d["inactive-requests"] == ["aot-base-extra"]
    # Re-layering (a new deployment from the same inputs) did not download again.
    assert {p.name: p.stat().st_ino for p in debs.glob("aot-layer*.deb")} == cached


def test_real_package_from_this_machines_sources(sysroot: Path) -> None:
    ok(cli(sysroot, "install", "htop"))
    root = deploy_dir(sysroot, deployments(sysroot)[0])
    proc = subprocess.run(["bwrap", "--ro-bind", str(root), "/", "--proc", "/proc", "--dev", "/dev",
                           "--unshare-net", "/usr/bin/htop", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("htop "), proc.stderr


def test_upgrade_and_rebase_take_install_and_uninstall(sysroot: Path, layer_tree: ComposedTree) -> None:
    # No new base: the package change alone makes the new deployment.
    ok(cli(sysroot, "upgrade", "--install", "aot-layer"))
    d = deployments(sysroot)[0]
    assert d["requested-packages"] == ["aot-layer"] and d["base-checksum"] == layer_tree.commit
    assert "aot-layer" in dpkg_versions(deploy_dir(sysroot, d))
    proc = cli(sysroot, "upgrade")
    assert proc.returncode == 77, proc.stderr
    # rebase onto the same ref by its full refspec, swapping the request.
    ok(cli(sysroot, "rebase", f"debian:{REF}", "--uninstall", "aot-layer", "--install", "aot-layer-dep"))
    d = deployments(sysroot)[0]
    assert d["requested-packages"] == ["aot-layer-dep"]
    versions = dpkg_versions(deploy_dir(sysroot, d))
    assert "aot-layer-dep" in versions and "aot-layer" not in versions


def test_maintainer_scripts_see_no_network_and_no_host(sysroot: Path) -> None:
    marker = Path(HOST_MARKER)
    marker.write_text("on the host\n")
    try:
        ok(cli(sysroot, "install", "aot-probe"))
    finally:
        marker.unlink()
    report = (deploy_dir(sysroot, deployments(sysroot)[0]) / "usr/share/aot-probe/report").read_text()
    assert report.splitlines()[0].split() == ["interfaces:", "lo"], report
    assert report.splitlines()[1] == "host-hidden", report
