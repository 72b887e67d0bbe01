"""Build a root filesystem with mmdebstrap from an exact, already fetched package set.

The resolved .debs are offered to mmdebstrap as a flat, local repository that
holds nothing else, so mmdebstrap installs exactly the resolved set, offline.
Afterwards the tree's own apt sources are the treefile's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..apt import backend
from ..errors import AptOstreeError, CommandFailed
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
        argv = ["mmdebstrap", "--mode=root", f"--variant={treefile.variant.value}",
                "--quiet",
                # Bind-mounts the local repository into the chroot (no copies).
                "--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount",
                "--aptopt=Acquire::Languages \"none\"",
                "--aptopt=APT::Install-Recommends \"false\"",
                f"--include={','.join(p.name for p in packages)}",
                treefile.suite or "stable", os.fspath(dest), mirror]
        try:
            run(argv, what="mmdebstrap")
        except CommandFailed:
            if dest.exists():
                shutil.rmtree(dest, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(index, ignore_errors=True)
    write_tree_sources(dest, treefile.sources)
