"""What differs between two commits, read from the repository (no checkout).

Directories whose content checksums are equal are skipped whole, so the cost
is proportional to what changed, not to the size of the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

from ..errors import RepoError  # noqa: E402
from .repo import Repo  # noqa: E402


@dataclass
class TreeDiff:
    """Paths ("/usr/bin/x") added, modified and removed; an added or removed
    directory is listed once, not its contents.  A path whose type changed
    is both removed and added."""

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed)


def _root(repo: Repo, rev: str) -> OSTree.RepoFile:
    checksum = repo.resolve(rev)
    try:
        _, root, _ = repo.gobject.read_commit(checksum, None)
    except GLib.Error as e:
        raise RepoError(f"cannot read commit {checksum}: {e.message}") from e
    return root


def _children(d: OSTree.RepoFile) -> dict[str, tuple[Gio.FileType, OSTree.RepoFile]]:
    out = {}
    enum = d.enumerate_children("standard::name,standard::type",
                                Gio.FileQueryInfoFlags.NOFOLLOW_SYMLINKS, None)
    while (info := enum.next_file(None)) is not None:
        name = info.get_name()
        out[name] = (info.get_file_type(), d.get_child(name))
    return out


def _walk(a: OSTree.RepoFile, b: OSTree.RepoFile, path: str, out: TreeDiff) -> None:
    a.ensure_resolved()
    b.ensure_resolved()
    if a.tree_get_contents_checksum() == b.tree_get_contents_checksum():
        return
    old, new = _children(a), _children(b)
    for name in sorted(old.keys() | new.keys()):
        p = f"{path.rstrip('/')}/{name}"
        if name not in new:
            out.removed.append(p)
        elif name not in old:
            out.added.append(p)
        else:
            (ta, fa), (tb, fb) = old[name], new[name]
            if ta == Gio.FileType.DIRECTORY and tb == Gio.FileType.DIRECTORY:
                _walk(fa, fb, p, out)
            elif ta != tb:
                out.removed.append(p)
                out.added.append(p)
            elif fa.get_checksum() != fb.get_checksum():
                out.modified.append(p)


def diff_commits(repo: Repo, old: str, new: str, subpath: str = "/") -> TreeDiff:
    """The changes from commit ``old`` to commit ``new`` below ``subpath``."""
    out = TreeDiff()
    rel = subpath.strip("/")
    a, b = _root(repo, old), _root(repo, new)
    if rel:
        a, b = a.resolve_relative_path(rel), b.resolve_relative_path(rel)
    _walk(a, b, f"/{rel}" if rel else "", out)
    return out
