"""One real compose (``base_tree``: minbase + the test packages), checked with the real ``ostree`` CLI.

Every test here reads the same commit; none of them writes to its repository.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testlib.compose import ComposedTree
from testlib.tools import OstreeCli, run_cli

pytestmark = [pytest.mark.root, pytest.mark.network]

TMPFILES = "/usr/lib/tmpfiles.d/apt-ostree-autovar.conf"
ADMINDIR = "usr/share/dpkg/database"


@pytest.fixture(scope="module")
def tree(base_tree: ComposedTree) -> ComposedTree:
    return base_tree


@pytest.fixture(scope="module")
def ostree(base_tree: ComposedTree) -> OstreeCli:
    return base_tree.ostree


@pytest.fixture(scope="module")
def tmpfiles(ostree: OstreeCli, tree: ComposedTree) -> dict[str, str]:
    """tmpfiles.d lines of the commit, by path."""
    out = {}
    for line in ostree.cat(tree.commit, TMPFILES).splitlines():
        if line and not line.startswith("#"):
            out[line.split()[1]] = line
    return out


def dpkg_query(checkout: Path, *args: str) -> str:
    return subprocess.run(["dpkg-query", f"--admindir={checkout / ADMINDIR}", *args],
                          check=True, capture_output=True, text=True).stdout


# ---- the compose itself ------------------------------------------------------


def test_compose_reports_the_commit(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.rev_parse(tree.ref) == tree.commit
    assert f"Wrote commit {tree.commit}" in tree.proc.stdout
    assert "Traceback" not in tree.proc.stderr


def test_repository_is_archive_mode_and_fsck_clean(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert re.search(r"^mode=archive", (tree.repo / "config").read_text(), re.M)
    ostree.fsck()


# ---- OSTree layout -----------------------------------------------------------


def test_etc_moved_to_usr_etc(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert not ostree.exists(tree.commit, "/etc")
    assert ostree.exists(tree.commit, "/usr/etc/passwd")
    assert ostree.exists(tree.commit, "/usr/etc/os-release") or \
        ostree.exists(tree.commit, "/usr/lib/os-release")


def test_var_is_empty(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.ls_names(tree.commit, "/var") == []


@pytest.mark.parametrize(("path", "target"), [
    ("/home", "var/home"), ("/root", "var/roothome"), ("/opt", "var/opt"),
    ("/srv", "var/srv"), ("/mnt", "var/mnt"), ("/usr/local", "../var/usrlocal"),
    ("/ostree", "sysroot/ostree"),
])
def test_toplevel_symlinks(tree: ComposedTree, ostree: OstreeCli, path: str, target: str) -> None:
    line = ostree("ls", tree.commit, "-d", path).strip()
    assert line.startswith("l"), line
    assert line.endswith(f"{path} -> {target}"), line


@pytest.mark.parametrize("path", ["/sysroot", "/dev", "/boot", "/proc", "/sys", "/run", "/tmp"])
def test_api_and_boot_directories_exist_and_are_empty(tree: ComposedTree, ostree: OstreeCli,
                                                      path: str) -> None:
    assert ostree("ls", tree.commit, "-d", path).startswith("d")
    assert ostree.ls_names(tree.commit, path) == []


def test_machine_id_is_empty(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.cat(tree.commit, "/usr/etc/machine-id") == ""


# ---- the test packages -------------------------------------------------------


def test_conffile_is_under_usr_etc(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.cat(tree.commit, "/usr/etc/aot-app/app.conf") == \
        "# aot-app configuration\nversion = 1.0\n"


def test_dpkg_database_lives_in_usr_and_is_readable(base_checkout: Path) -> None:
    assert (base_checkout / ADMINDIR / "status").is_file()
    assert not (base_checkout / "var/lib/dpkg").exists()
    installed = dict(line.split("\t") for line in
                     dpkg_query(base_checkout, "-W", "-f=${Package}\t${Status}\n").splitlines())
    assert installed["aot-app"] == "install ok installed"
    assert installed["aot-lib"] == "install ok installed"   # pulled in by Depends
    assert installed["dpkg"] == "install ok installed"
    assert "aot-broken" not in installed and "aot-extra" not in installed


def test_dpkg_database_knows_the_conffile(base_checkout: Path) -> None:
    conffiles = dpkg_query(base_checkout, "-W", "-f=${Conffiles}\n", "aot-app").split()
    assert conffiles[0] == "/etc/aot-app/app.conf"
    md5 = hashlib.md5((base_checkout / "usr/etc/aot-app/app.conf").read_bytes()).hexdigest()
    assert conffiles[1] == md5


def test_dpkg_database_lists_package_files(base_checkout: Path) -> None:
    files = dpkg_query(base_checkout, "-L", "aot-app").split()
    assert "/usr/bin/aot-app" in files
    assert "/etc/aot-app/app.conf" in files


def test_dependency_is_installed(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.cat(tree.commit, "/usr/share/aot-lib/lib.txt") == "aot-lib 1.0\n"


def test_maintainer_scripts_ran(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.cat(tree.commit, "/usr/share/aot-app/preinst-ran") == "preinst install\n"
    assert ostree.cat(tree.commit, "/usr/share/aot-app/postinst-ran") == "postinst configure\n"


def test_var_content_becomes_tmpfiles_entries(tree: ComposedTree, ostree: OstreeCli,
                                              tmpfiles: dict[str, str]) -> None:
    # A directory the package ships, empty or not.
    assert tmpfiles["/var/lib/aot-app"].split()[:5] == ["d", "/var/lib/aot-app", "0755", "root", "root"]
    assert tmpfiles["/var/lib/aot-app/cache"].split()[0] == "d"
    # A file the package ships, and one its postinst made: copied from the factory.
    for path in ("/var/lib/aot-app/state.txt", "/var/lib/aot-app/generated/by-postinst"):
        words = tmpfiles[path].split()
        assert words[:5] == ["C", path, "0644", "root", "root"], tmpfiles[path]
        assert words[-1] == f"/usr/share/factory{path}"
    assert ostree.cat(tree.commit, "/usr/share/factory/var/lib/aot-app/state.txt") == \
        "initial state of aot-app 1.0\n"
    assert ostree.cat(tree.commit, "/usr/share/factory/var/lib/aot-app/generated/by-postinst") == \
        "made by postinst\n"


def test_factory_copies_are_owned_like_the_original(tree: ComposedTree, ostree: OstreeCli) -> None:
    line = ostree("ls", tree.commit, "/usr/share/factory/var/lib/aot-app/state.txt").split()
    assert line[0] == "-00644" and line[1:3] == ["0", "0"], line


def test_build_host_paths_do_not_leak(tree: ComposedTree, ostree: OstreeCli,
                                      tmpfiles: dict[str, str]) -> None:
    # mmdebstrap bind-mounts the .deb cache into the tree while it builds.
    assert not [line for line in tmpfiles.values() if "test-cache" in line or "pytest" in line]


def test_package_state_links_back_from_var(tmpfiles: dict[str, str]) -> None:
    assert tmpfiles["/var/lib/dpkg"].split() == \
        ["L", "/var/lib/dpkg", "-", "-", "-", "-", "../../usr/share/dpkg/database"]


def test_tmpfiles_recreate_var_in_a_checkout(base_checkout: Path, tmp_path: Path) -> None:
    """systemd-tmpfiles, as at boot, rebuilds /var from the commit's configuration."""
    if shutil.which("systemd-tmpfiles") is None:
        pytest.skip("systemd-tmpfiles is not installed")
    root = tmp_path / "root"
    # Hardlinks: cheap, and tmpfiles only adds files under /var.
    subprocess.run(["cp", "-al", base_checkout, root], check=True)
    # As in a deployment: /etc (users and groups) comes from /usr/etc.
    subprocess.run(["cp", "-a", root / "usr/etc", root / "etc"], check=True)
    proc = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", "--boot",
                           f"{root}{TMPFILES}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (root / "var/lib/aot-app/state.txt").read_text() == "initial state of aot-app 1.0\n"
    assert (root / "var/lib/aot-app/cache").is_dir()
    assert (root / "var/lib/dpkg/status").is_file()   # through the L line
    assert (root / "var/roothome").is_dir()


# ---- treefile features ---------------------------------------------------------


def test_add_files(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.cat(tree.commit, "/usr/share/aot-added/added.txt") == "added by the treefile\n"
    # Added under /etc before the layout moved it.
    assert ostree.cat(tree.commit, "/usr/etc/aot-added.conf") == "# added into /etc by the treefile\n"


def test_remove_files(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.ls_names(tree.commit, "/usr/share/aot-lib") == ["lib.txt"]


def test_units_are_enabled(tree: ComposedTree, ostree: OstreeCli) -> None:
    link = ostree("ls", tree.commit, "-d",
                  "/usr/etc/systemd/system/aot-test.target.wants/aot-app.service").strip()
    assert link.startswith("l") and link.endswith("/systemd/system/aot-app.service"), link


def test_default_target(tree: ComposedTree, ostree: OstreeCli) -> None:
    link = ostree("ls", tree.commit, "-d", "/usr/etc/systemd/system/default.target").strip()
    assert link.startswith("l") and link.endswith("/systemd/system/aot-test.target"), link


def test_postprocess_ran_in_the_tree(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.cat(tree.commit, "/usr/share/aot-postprocess.txt") == "aot-app 1.0\n"


def test_apt_sources_of_the_tree_are_the_treefiles(tree: ComposedTree, ostree: OstreeCli) -> None:
    sources = ostree.cat(tree.commit, "/usr/etc/apt/sources.list")
    assert "file://" in sources and "[trusted=yes]" in sources
    # mmdebstrap's temporary local mirror must not leak into the tree.
    everything = sources + "".join(
        ostree.cat(tree.commit, f"/usr/etc/apt/sources.list.d/{n}")
        for n in ostree.ls_names(tree.commit, "/usr/etc/apt/sources.list.d"))
    assert ".index-" not in everything


# ---- commit metadata -----------------------------------------------------------


def test_version_metadata(tree: ComposedTree, ostree: OstreeCli) -> None:
    # Automatic version from SOURCE_DATE_EPOCH (2025-01-01), first of the day.
    assert ostree.metadata(tree.commit, "version") == "'20250101.0'"
    assert "Version: 20250101.0" in ostree("show", tree.commit)
    assert "Date:  2025-01-01 00:00:00 +0000" in ostree("show", tree.commit)


def test_packages_metadata(tree: ComposedTree, ostree: OstreeCli) -> None:
    value = ostree.metadata(tree.commit, "apt-ostree.packages")
    assert "('aot-app', '1.0', 'all')" in value
    assert "('aot-lib', '1.0', 'all')" in value
    assert re.search(r"\('dpkg', '[^']+', 'amd64'\)", value), value


def test_inputhash_metadata(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert re.fullmatch(r"'[0-9a-f]{64}'", ostree.metadata(tree.commit, "apt-ostree.inputhash"))


def test_treefile_metadata(tree: ComposedTree, ostree: OstreeCli) -> None:
    # GVariant text of a string: a quoted literal Python reads too.
    data = json.loads(ast.literal_eval(ostree.metadata(tree.commit, "apt-ostree.treefile")))
    assert data["ref"] == tree.ref
    assert data["packages"] == ["aot-app"]
    assert data["units"] == ["aot-app.service"]


def test_treefile_and_command_line_metadata(tree: ComposedTree, ostree: OstreeCli) -> None:
    assert ostree.metadata(tree.commit, "aot.purpose") == "'integration test'"
    kind, number = ostree.metadata(tree.commit, "aot.number").split()
    assert kind == "uint64"
    # `ostree show` prints numbers byte-swapped on little-endian machines.
    assert 42 in (int(number), int.from_bytes(int(number).to_bytes(8, "little"), "big"))
    assert ostree.metadata(tree.commit, "aot.extra") == "'from the command line'"


def test_write_lockfile_matches_the_commit(tree: ComposedTree) -> None:
    lock = json.loads(tree.lockfile.read_text())["packages"]
    assert lock["aot-app"] == {"version": "1.0", "architecture": "all"}
    listed = run_cli("db", "list", tree.commit, "--repo", tree.repo, "--json")
    assert listed.returncode == 0, listed.stderr
    packages = json.loads(listed.stdout)["packages"]
    assert {p["name"]: {"version": p["version"], "architecture": p["architecture"]}
            for p in packages} == lock


# ---- db list -------------------------------------------------------------------


def test_db_list(tree: ComposedTree) -> None:
    proc = run_cli("db", "list", tree.ref, "--repo", tree.repo)
    assert proc.returncode == 0, proc.stderr
    assert tree.commit in proc.stdout.splitlines()[0]
    assert "  aot-app 1.0 all" in proc.stdout.splitlines()
    assert "  aot-lib 1.0 all" in proc.stdout.splitlines()


def test_db_list_prefix_and_json(tree: ComposedTree) -> None:
    proc = run_cli("db", "list", tree.commit, "aot-", "--repo", tree.repo, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["commit"] == tree.commit
    assert data["packages"] == [
        {"name": "aot-app", "version": "1.0", "architecture": "all"},
        {"name": "aot-lib", "version": "1.0", "architecture": "all"},
    ]


def test_db_list_by_version(tree: ComposedTree) -> None:
    proc = run_cli("db", "list", "20250101.0", "aot-app", "--repo", tree.repo)
    assert proc.returncode == 0, proc.stderr
    assert tree.commit in proc.stdout
    assert "  aot-app 1.0 all" in proc.stdout


def test_db_list_unknown_revision(tree: ComposedTree) -> None:
    proc = run_cli("db", "list", "no-such-ref", "--repo", tree.repo)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "no-such-ref" in proc.stderr
    assert "Traceback" not in proc.stderr
