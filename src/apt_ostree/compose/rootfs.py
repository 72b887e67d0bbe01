"""Build a root filesystem with mmdebstrap from an exact, already fetched package set.

The resolved .debs are offered to mmdebstrap as a flat, local repository that
holds nothing else, so mmdebstrap installs exactly the resolved set, offline.
Afterwards the tree's own apt sources are the treefile's.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..apt import backend
from ..errors import AptOstreeError, CommandFailed, ScriptFailed
from ..packages import Package
from ..run import run
from .treefile import Treefile


def write_tree_sources(root: Path, sources: Sequence[str]) -> None:
    """Give the tree the treefile's apt sources (one-line and deb822)."""
    etc_apt = root / "etc/apt"
    (etc_apt / "sources.list.d").mkdir(parents=True, exist_ok=True)
    one_line = [s for s in sources if "\n" not in s and not s.startswith("Types:")]
    deb822 = [s for s in sources if s not in one_line]
    (etc_apt / "sources.list").write_text("".join(f"{s}\n" for s in one_line))
    target = etc_apt / "sources.list.d/apt-ostree.sources"
    if deb822:
        target.write_text("\n\n".join(deb822) + "\n")
    elif target.exists():
        target.unlink()


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first."""
    top = os.fspath(path.absolute())
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == top or point.startswith(top + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_tree(path: Path) -> None:
    """Remove a build tree, unmounting what is mounted inside first.

    Never deletes across a mount point: rmtree into a bind mount of the .deb
    cache (or of /dev) would empty the original.
    """
    for point in mounts_under(path):
        if run(["umount", point], check=False).returncode != 0:
            run(["umount", "--lazy", point], check=False)
    left = mounts_under(path)
    if left:
        raise AptOstreeError(f"cannot unmount {left[0]}: leaving {path} in place")
    if path.exists() or path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def prune_empty_dirs(root: Path, inside: Path) -> None:
    """Remove ``root``/``inside`` and its parents below ``root`` while they are empty directories.

    mmdebstrap's file-mirror hook leaves the mount point of the .deb cache behind.
    """
    path = root / inside.absolute().relative_to("/")
    while path != root and path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        path.rmdir()
        path = path.parent


# dpkg's lines that start the work on one package: a script's output follows one of them.
_DPKG_STEPS = ("Setting up ", "Preparing to unpack ", "Unpacking ", "Selecting previously ",
               "Processing triggers for ", "Removing ")


def failure_summary(output: str, limit: int = 25) -> tuple[str, bool]:
    """What a failed mmdebstrap run says about the failure, and whether a maintainer script failed.

    For a failed maintainer script: dpkg's step, the script's own output and
    dpkg's error.  Otherwise the error lines (long ones shortened: apt's
    command line lists every package).
    """
    lines = output.splitlines()
    picked: list[str] = []
    for i, line in enumerate(lines):
        if line.startswith("dpkg: error processing "):
            start = i
            while start > 0 and not lines[start - 1].startswith(_DPKG_STEPS) and i - start < limit:
                start -= 1
            picked += lines[max(start - 1, 0):i + 2]
    if picked:
        return "\n".join(picked[-limit:]), True
    errors = [ln if len(ln) <= 300 else ln[:300] + " [...]"
              for ln in lines if ln.startswith(("E: ", "W: "))]
    return "\n".join((errors or lines)[-limit:]), False


def build_rootfs(dest: Path, treefile: Treefile, apt_root: backend.AptRoot,
                 packages: Sequence[Package], files: dict[Package, Path]) -> None:
    """Install ``packages`` (and nothing else) into the new directory ``dest``."""
    # mmdebstrap wants an absolute target whose parent exists.
    dest = dest.absolute()
    if dest.exists() and any(dest.iterdir()):
        raise AptOstreeError(f"{dest}: exists and is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stanzas = backend.stanzas(apt_root, packages)
    index = Path(tempfile.mkdtemp(prefix=".index-", dir=apt_root.archives))
    try:
        backend.write_flat_repo(index, stanzas, files, apt_root.archives,
                                treefile.suite or "stable")
        mirror = f"deb [trusted=yes] file://{apt_root.archives} {index.name}/"
        # Not --quiet: on failure, dpkg's messages and the maintainer scripts' output
        # are what the user needs (failure_summary picks them out).
        argv = ["mmdebstrap", "--mode=root", f"--variant={treefile.variant.value}",
                # Bind-mounts the local repository into the chroot (no copies).
                "--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount",
                "--aptopt=Acquire::Languages \"none\"",
                "--aptopt=APT::Install-Recommends \"false\"",
                f"--include={','.join(p.name for p in packages)}",
                treefile.suite or "stable", os.fspath(dest), mirror]
        proc = run(argv, check=False)
        if proc.returncode != 0:
            # A failed mmdebstrap leaves the hook's bind mount of the .deb cache in place.
            remove_tree(dest)
            summary, script_failed = failure_summary(proc.stdout)
            error = ScriptFailed if script_failed else CommandFailed
            raise error(argv, proc.returncode, summary,
                        what="a maintainer script" if script_failed else "mmdebstrap")
    finally:
        shutil.rmtree(index, ignore_errors=True)
    prune_empty_dirs(dest, apt_root.archives)
    write_tree_sources(dest, treefile.sources)
