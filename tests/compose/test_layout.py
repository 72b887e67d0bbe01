"""Unit tests for adapting a Debian root filesystem to the OSTree layout, on synthetic trees."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from apt_ostree.compose.layout import FACTORY, TMPFILES_CONF, adapt_to_ostree
from apt_ostree.errors import LayoutError

KVER = "6.1.0-1-amd64"


def _who() -> tuple[str, str]:
    """How the synthetic passwd/group name the uid/gid that owns files created by this test."""
    uid, gid = os.getuid(), os.getgid()
    return ("root" if uid == 0 else "builder"), ("root" if gid == 0 else "builders")


def make_tree(root: Path) -> Path:
    def put(rel: str, content: str = "") -> Path:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
        return p

    uid, gid = os.getuid(), os.getgid()
    put("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"
        + (f"builder:x:{uid}:{gid}::/home/builder:/bin/sh\n" if uid else "")
        + "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n")
    put("etc/group", "root:x:0:\n" + (f"builders:x:{gid}:\n" if gid else "") + "daemon:x:1:\n")
    put("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    put("etc/hostname", "debian\n")
    put("var/lib/dpkg/status", "Package: base-files\nStatus: install ok installed\n")
    put("var/lib/dpkg/info/base-files.list", "/etc\n")
    put("var/cache/debconf/config.dat", "Name: x\n")
    put("var/cache/apt/pkgcache.bin", "binary")
    put("var/log/x", "log line\n")
    put("var/log/apt/history.log", "history\n")
    put("var/lib/foo/file", "state\n").chmod(0o640)
    (root / "var/lib/foo").chmod(0o755)
    os.mkfifo(root / "var/lib/foo/fifo")
    (root / "var/tmp").mkdir()
    (root / "var/tmp").chmod(0o1777)
    put("var/tmp/junk", "junk")
    (root / "var/lib/somedir").mkdir(parents=True)
    (root / "var/lib/somedir").chmod(0o750)
    (root / "var/run").symlink_to("/run")
    put(f"boot/vmlinuz-{KVER}", "kernel")
    put(f"boot/initrd.img-{KVER}", "initramfs")
    put(f"boot/config-{KVER}", "CONFIG_X=y\n")
    put(f"boot/System.map-{KVER}", "map\n")
    (root / "vmlinuz").symlink_to(f"boot/vmlinuz-{KVER}")
    (root / "initrd.img").symlink_to(f"boot/initrd.img-{KVER}")
    put(f"usr/lib/modules/{KVER}/modules.dep", "")
    (root / "home").mkdir()
    put("root/.bashrc", "# bashrc\n")
    (root / "root").chmod(0o700)
    (root / "opt").mkdir()
    (root / "srv").mkdir()
    (root / "mnt").mkdir()
    (root / "usr/local/bin").mkdir(parents=True)
    put("dev/null", "not a device")
    (root / "tmp").mkdir()
    put("tmp/leftover", "x")
    put("usr/bin/true", "#!/bin/sh\n")
    return root


def tmpfiles_lines(root: Path) -> list[str]:
    text = (root / TMPFILES_CONF).read_text()
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


@pytest.fixture
def adapted(tmp_path: Path) -> Path:
    root = make_tree(tmp_path / "root")
    assert adapt_to_ostree(root) == KVER
    return root


def test_etc_moves_to_usr_etc(adapted: Path) -> None:
    assert not (adapted / "etc").exists()
    assert not (adapted / "etc").is_symlink()
    assert (adapted / "usr/etc/hostname").read_text() == "debian\n"
    assert (adapted / "usr/etc/passwd").is_file()


def test_machine_id_is_empty(adapted: Path) -> None:
    mid = adapted / "usr/etc/machine-id"
    assert mid.is_file()
    assert mid.read_bytes() == b""
    assert stat.S_IMODE(mid.stat().st_mode) == 0o444


def test_dpkg_database_moves_to_usr(adapted: Path) -> None:
    db = adapted / "usr/share/dpkg/database"
    assert db.is_dir() and not db.is_symlink()
    assert "base-files" in (db / "status").read_text()
    assert (db / "info/base-files.list").is_file()
    assert (adapted / "usr/lib/apt-ostree/state/debconf/config.dat").read_text() == "Name: x\n"


def test_tmpfiles_links_package_state_back(adapted: Path) -> None:
    lines = tmpfiles_lines(adapted)
    assert "L /var/lib/dpkg - - - - ../../usr/share/dpkg/database" in lines
    assert "L /var/cache/debconf - - - - ../../usr/lib/apt-ostree/state/debconf" in lines
    # The relative target resolves from the link's directory to the moved database.
    target = os.path.normpath(os.path.join("/var/lib", "../../usr/share/dpkg/database"))
    assert target == "/usr/share/dpkg/database"


def test_tmpfiles_directories_symlinks_and_copies(adapted: Path) -> None:
    lines = tmpfiles_lines(adapted)
    user, group = _who()
    assert "L /var/run - - - - /run" in lines
    assert f"d /var/lib/somedir 0750 {user} {group} - -" in lines
    assert f"d /var/lib/foo 0755 {user} {group} - -" in lines
    assert f"d /var/roothome 0700 {user} {group} - -" in lines
    assert f"d /var/tmp 1777 {user} {group} - -" in lines
    assert f"C /var/lib/foo/file 0640 {user} {group} - /{FACTORY}/var/lib/foo/file" in lines
    assert f"C /var/roothome/.bashrc 0644 {user} {group} - /{FACTORY}/var/roothome/.bashrc" in lines
    # Every top-level /var directory is created at boot.
    for d in ("home", "opt", "srv", "mnt", "usrlocal"):
        assert any(ln.startswith(f"d /var/{d} ") for ln in lines), d
    assert any(ln.startswith("d /var/usrlocal/bin ") for ln in lines)
    # One line per path, sorted by path.
    paths = [ln.split()[1] for ln in lines]
    assert paths == sorted(paths)
    assert len(paths) == len(set(paths))


def test_factory_copies(adapted: Path) -> None:
    copy = adapted / FACTORY / "var/lib/foo/file"
    assert copy.read_text() == "state\n"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o640
    assert copy.stat().st_uid == os.getuid()
    assert (adapted / FACTORY / "var/roothome/.bashrc").read_text() == "# bashrc\n"


def test_var_is_empty_and_logs_are_dropped(adapted: Path) -> None:
    var = adapted / "var"
    assert var.is_dir()
    assert list(var.iterdir()) == []
    lines = tmpfiles_lines(adapted)
    text = "\n".join(lines)
    assert "/var/log/x" not in text
    # Directories that packages ship under /var/log and /var/cache are kept
    # (a service may expect its log directory); their content is not.
    assert any(ln.startswith("d /var/log/apt ") for ln in lines)
    assert any(ln.startswith("d /var/cache/apt ") for ln in lines)
    assert not any(ln.startswith(("C /var/log", "C /var/cache")) for ln in lines)
    assert "/var/tmp/junk" not in text
    assert "/var/lib/foo/fifo" not in text  # runtime state, dropped
    assert any(ln.startswith("d /var/log ") for ln in lines)
    assert any(ln.startswith("d /var/cache ") for ln in lines)
    assert not (adapted / FACTORY / "var/log").exists()
    assert not (adapted / FACTORY / "var/cache").exists()


@pytest.mark.parametrize(("path", "target"), [
    ("home", "var/home"),
    ("root", "var/roothome"),
    ("opt", "var/opt"),
    ("srv", "var/srv"),
    ("mnt", "var/mnt"),
    ("usr/local", "../var/usrlocal"),
    ("ostree", "sysroot/ostree"),
])
def test_toplevel_symlinks(adapted: Path, path: str, target: str) -> None:
    link = adapted / path
    assert link.is_symlink()
    assert os.readlink(link) == target


def test_api_dirs_exist_and_are_empty(adapted: Path) -> None:
    for name, mode in (("sysroot", 0o755), ("dev", 0o755), ("proc", 0o555), ("sys", 0o555),
                       ("run", 0o755), ("boot", 0o755), ("tmp", 0o1777)):
        d = adapted / name
        assert d.is_dir() and not d.is_symlink(), name
        assert list(d.iterdir()) == [], name
        assert stat.S_IMODE(d.stat().st_mode) == mode, name


def test_kernel_moves_to_usr_lib_modules(adapted: Path) -> None:
    mod = adapted / "usr/lib/modules" / KVER
    assert (mod / "vmlinuz").read_text() == "kernel"
    assert (mod / "initramfs.img").read_text() == "initramfs"
    assert (mod / "config").read_text() == "CONFIG_X=y\n"
    assert (mod / "modules.dep").exists()
    assert not (adapted / "vmlinuz").is_symlink()
    assert not (adapted / "initrd.img").is_symlink()


def test_regular_content_untouched(adapted: Path) -> None:
    assert (adapted / "usr/bin/true").read_text() == "#!/bin/sh\n"


def test_two_kernels_are_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    (root / "boot/vmlinuz-6.1.0-2-amd64").write_text("other kernel")
    with pytest.raises(LayoutError) as info:
        adapt_to_ostree(root)
    assert "more than one kernel" in str(info.value)
    assert KVER in str(info.value) and "6.1.0-2-amd64" in str(info.value)
    assert info.value.hint


def test_kernel_already_in_modules_plus_another_in_boot(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    (root / "usr/lib/modules/6.1.0-9-amd64").mkdir(parents=True)
    (root / "usr/lib/modules/6.1.0-9-amd64/vmlinuz").write_text("k")
    with pytest.raises(LayoutError):
        adapt_to_ostree(root)


def test_tree_without_kernel(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "root")
    for p in (root / "boot").iterdir():
        p.unlink()
    assert adapt_to_ostree(root) is None
    assert (root / "usr/etc").is_dir()


def test_adapting_twice_is_refused(adapted: Path) -> None:
    with pytest.raises(LayoutError) as info:
        adapt_to_ostree(adapted)
    assert "already adapted" in str(info.value)


def test_not_a_root_filesystem(tmp_path: Path) -> None:
    (tmp_path / "usr").mkdir()
    with pytest.raises(LayoutError) as info:
        adapt_to_ostree(tmp_path)
    assert "no /etc" in str(info.value)


def test_existing_var_home_content_is_kept(tmp_path: Path) -> None:
    # /home in the tree and a /var/home already present: the content is merged.
    root = make_tree(tmp_path / "root")
    (root / "home/alice").mkdir()
    (root / "var/home/bob").mkdir(parents=True)
    adapt_to_ostree(root)
    lines = tmpfiles_lines(root)
    assert any(ln.startswith("d /var/home/alice ") for ln in lines)
    assert any(ln.startswith("d /var/home/bob ") for ln in lines)


def test_pyc_timestamps_match_the_deployed_sources(tmp_path: Path) -> None:
    """A checkout has mtime 0: timestamp .pyc files must record 0 to stay valid."""
    import importlib.util
    import py_compile
    import subprocess
    import sys

    pkg = tmp_path / "usr/lib/python3/dist-packages/aotmod"
    pkg.mkdir(parents=True)
    src = pkg / "__init__.py"
    src.write_text("VALUE = 1\n")
    stamp = py_compile.compile(str(src), doraise=True)
    checked = pkg / "hashed.py"
    checked.write_text("VALUE = 2\n")
    hashed = py_compile.compile(str(checked), doraise=True,
                                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
    os.chmod(stamp, 0o640)
    hashed_before = Path(hashed).read_bytes()
    from apt_ostree.compose.layout import fix_pyc_timestamps

    assert fix_pyc_timestamps(tmp_path) == 1
    data = Path(stamp).read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER and data[8:12] == b"\0\0\0\0"
    assert stat.S_IMODE(os.stat(stamp).st_mode) == 0o640
    assert Path(hashed).read_bytes() == hashed_before
    assert fix_pyc_timestamps(tmp_path) == 0
    # As deployed (mtime 0, read-only), Python takes the .pyc instead of compiling the source.
    os.utime(src, (0, 0))
    proc = subprocess.run([sys.executable, "-v", "-B", "-c", "import aotmod"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(pkg.parent)})
    assert proc.returncode == 0, proc.stderr
    assert f"# code object from '{stamp}'" in proc.stderr, proc.stderr[-2000:]
