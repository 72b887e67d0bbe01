"""Commit an overlay's upper layer on top of a base commit (DESIGN.md decision 5).

The base commit's ``MutableTree`` plus the upper directory: whiteouts (char
devices 0:0) become removals, opaque directories replace the base's; only the
changed files are written.  The object store is never written through a
checkout.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

from ..errors import RepoError  # noqa: E402
from .repo import Repo, variant  # noqa: E402

OPAQUE_XATTR = "trusted.overlay.opaque"


def scan_upper(upper: Path) -> tuple[list[str], list[str]]:
    """Remove whiteouts and overlay xattrs from ``upper``; return (removed, opaque) paths."""
    removed: list[str] = []
    opaque: list[str] = []
    for dirpath, dirnames, filenames in os.walk(upper):
        here = Path(dirpath)
        for name in list(dirnames) + filenames:
            path = here / name
            st = path.lstat()
            rel = str(path.relative_to(upper))
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                removed.append(rel)
                path.unlink()
                continue
            if path.is_symlink():
                continue
            for attr in os.listxattr(path, follow_symlinks=False):
                if attr.startswith("trusted.overlay."):
                    if attr == OPAQUE_XATTR and os.getxattr(path, attr) == b"y":
                        opaque.append(rel)
                    os.removexattr(path, attr, follow_symlinks=False)
    return removed, opaque


def _remove(mtree: OSTree.MutableTree, rel: str) -> None:
    parts = rel.split("/")
    node = mtree
    for part in parts[:-1]:
        subdirs = node.get_subdirs()
        if part not in subdirs:
            return
        node = subdirs[part]
    node.remove(parts[-1], True)


def commit_layer(repo: Repo, base: str, upper: Path, *, subject: str,
                 metadata: Mapping[str, Any], timestamp: int) -> str:
    removed, opaque = scan_upper(upper)
    meta = GLib.Variant("a{sv}", {k: variant(v) for k, v in sorted(metadata.items())})
    r = repo.gobject
    try:
        with repo.transaction():
            mtree = OSTree.MutableTree.new_from_commit(r, base)
            for rel in removed + opaque:
                _remove(mtree, rel)
            modifier = OSTree.RepoCommitModifier.new(OSTree.RepoCommitModifierFlags.NONE, None)
            r.write_directory_to_mtree(Gio.File.new_for_path(os.fspath(upper)), mtree, modifier, None)
            _, root = r.write_mtree(mtree, None)
            _, checksum = r.write_commit_with_time(base, subject, None, meta, root, timestamp, None)
    except GLib.Error as e:
        raise RepoError(f"cannot commit the layered tree: {e.message}") from e
    return checksum  # type: ignore[no-any-return]


def checkout(repo: Repo, rev: str, dest: Path) -> None:
    """Check ``rev`` out at ``dest`` (hardlinks into a bare repo: never write into it)."""
    opts = OSTree.RepoCheckoutAtOptions()
    opts.mode = OSTree.RepoCheckoutMode.NONE
    try:
        repo.gobject.checkout_at(opts, -100, os.fspath(dest), rev, None)  # -100: AT_FDCWD
    except GLib.Error as e:
        raise RepoError(f"cannot check out {rev}: {e.message}") from e
