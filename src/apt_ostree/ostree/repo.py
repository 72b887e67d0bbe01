"""The only module that touches ``gi.repository.OSTree``.

A small, typed API over libostree: open or create a repository, resolve
revisions, read commit metadata, and commit a directory with metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

from ..errors import RepoError  # noqa: E402


def variant(value: Any) -> GLib.Variant:
    """Convert a plain Python value to a GLib.Variant for commit metadata."""
    if isinstance(value, GLib.Variant):
        return value
    if isinstance(value, bool):
        return GLib.Variant("b", value)
    if isinstance(value, int):
        return GLib.Variant("t" if value >= 0 else "x", value)
    if isinstance(value, str):
        return GLib.Variant("s", value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return GLib.Variant("as", value)
    raise TypeError(f"cannot store {type(value).__name__} in commit metadata")


@dataclass(frozen=True)
class Commit:
    checksum: str
    parent: str | None
    subject: str
    timestamp: int
    metadata: dict[str, Any]

    @property
    def version(self) -> str | None:
        v = self.metadata.get("version")
        return v if isinstance(v, str) else None


class Repo:
    """An OSTree repository on disk."""

    def __init__(self, repo: OSTree.Repo, path: Path) -> None:
        self._repo = repo
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = False,
             mode: OSTree.RepoMode = OSTree.RepoMode.ARCHIVE) -> Repo:
        p = Path(path)
        repo = OSTree.Repo.new(Gio.File.new_for_path(os.fspath(p)))
        try:
            if create and not (p / "config").exists():
                p.mkdir(parents=True, exist_ok=True)
                repo.create(mode, None)
            else:
                repo.open(None)
        except GLib.Error as e:
            raise RepoError(f"cannot open repository {p}: {e.message}") from e
        return cls(repo, p)

    @property
    def gobject(self) -> OSTree.Repo:
        return self._repo

    # ---- reading --------------------------------------------------------

    def resolve(self, refspec: str, *, allow_missing: bool = False) -> str | None:
        try:
            _, rev = self._repo.resolve_rev(refspec, allow_missing)
        except GLib.Error as e:
            raise RepoError(f"unknown revision {refspec!r} in {self.path}") from e
        return rev  # type: ignore[no-any-return]

    def refs(self) -> dict[str, str]:
        _, refs = self._repo.list_refs(None, None)
        return dict(refs)

    def read_commit(self, rev: str) -> Commit:
        checksum = self.resolve(rev)
        assert checksum is not None
        try:
            _, commit = self._repo.load_variant(OSTree.ObjectType.COMMIT, checksum)
        except GLib.Error as e:
            raise RepoError(f"cannot read commit {checksum}: {e.message}") from e
        metadata = commit.get_child_value(0).unpack()
        parent = OSTree.commit_get_parent(commit)
        subject = commit.get_child_value(3).get_string()
        return Commit(checksum=checksum, parent=parent, subject=subject,
                      timestamp=OSTree.commit_get_timestamp(commit), metadata=metadata)

    # ---- writing --------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._repo.prepare_transaction(None)
        try:
            yield
        except BaseException:
            self._repo.abort_transaction(None)
            raise
        self._repo.commit_transaction(None)

    def commit_directory(
        self,
        root: Path,
        *,
        ref: str | None,
        subject: str,
        metadata: Mapping[str, Any],
        timestamp: int,
        parent: str | None = None,
    ) -> str:
        """Commit the directory ``root`` and move ``ref`` to it, atomically."""
        meta = GLib.Variant("a{sv}", {k: variant(v) for k, v in sorted(metadata.items())})
        modifier = OSTree.RepoCommitModifier.new(OSTree.RepoCommitModifierFlags.NONE, None)
        try:
            with self.transaction():
                mtree = OSTree.MutableTree.new()
                self._repo.write_directory_to_mtree(
                    Gio.File.new_for_path(os.fspath(root)), mtree, modifier, None)
                _, root_file = self._repo.write_mtree(mtree, None)
                _, checksum = self._repo.write_commit_with_time(
                    parent, subject, None, meta, root_file, timestamp, None)
                if ref:
                    self._repo.transaction_set_ref(None, ref, checksum)
        except GLib.Error as e:
            raise RepoError(f"commit to {self.path} failed: {e.message}") from e
        return checksum  # type: ignore[no-any-return]

    # ---- remotes and pulls -----------------------------------------------

    def remote_add(self, name: str, url: str, *, gpg_verify: bool = False) -> None:
        opts = GLib.Variant("a{sv}", {"gpg-verify": GLib.Variant("s", "true" if gpg_verify else "false")})
        try:
            self._repo.remote_change(None, OSTree.RepoRemoteChange.ADD_IF_NOT_EXISTS, name, url,
                                     opts, None)
        except GLib.Error as e:
            raise RepoError(f"cannot add remote {name}: {e.message}") from e

    def remote_url(self, name: str) -> str | None:
        try:
            _, url = self._repo.remote_get_url(name)
        except GLib.Error:
            return None
        return url  # type: ignore[no-any-return]

    def pull(self, remote: str, refs: list[str], *, commit_only: bool = False,
             depth: int = 0, timestamp_check: bool = False) -> None:
        """Pull ``refs`` (refs or checksums) from a remote name or a base URL.

        ``timestamp_check``: refuse (and leave the ref alone) when a ref's new
        commit is older than the one it points at now.
        """
        flags = OSTree.RepoPullFlags.COMMIT_ONLY if commit_only else OSTree.RepoPullFlags.NONE
        opts: dict[str, GLib.Variant] = {
            "refs": GLib.Variant("as", refs),
            "flags": GLib.Variant("i", int(flags)),
        }
        if depth:
            opts["depth"] = GLib.Variant("i", depth)
        if timestamp_check:
            opts["timestamp-check"] = GLib.Variant("b", True)
        try:
            self._repo.pull_with_options(remote, GLib.Variant("a{sv}", opts), None, None)
        except GLib.Error as e:
            what = ", ".join(refs)
            raise RepoError(f"cannot pull {what} from {remote}: {e.message}") from e

    def set_ref(self, remote: str | None, ref: str, checksum: str | None) -> None:
        self._repo.set_ref_immediate(remote, ref, checksum, None)

    def history(self, rev: str) -> Iterator[Commit]:
        """The commit ``rev`` and its ancestors that are present locally."""
        checksum: str | None = self.resolve(rev)
        while checksum:
            try:
                commit = self.read_commit(checksum)
            except RepoError:
                return
            yield commit
            checksum = commit.parent

    def read_file(self, rev: str, path: str) -> bytes | None:
        """The content of ``path`` in commit ``rev``, following one level of symlink."""
        checksum = self.resolve(rev)
        try:
            _, root, _ = self._repo.read_commit(checksum, None)
        except GLib.Error as e:
            raise RepoError(f"cannot read commit {checksum}: {e.message}") from e
        f = root.resolve_relative_path(path.lstrip("/"))
        try:
            info = f.query_info("standard::type,standard::symlink-target",
                                Gio.FileQueryInfoFlags.NOFOLLOW_SYMLINKS, None)
            if info.get_file_type() == Gio.FileType.SYMBOLIC_LINK:
                target = info.get_symlink_target()
                base = os.path.dirname("/" + path.lstrip("/"))
                f = root.resolve_relative_path(os.path.normpath(os.path.join(base, target)).lstrip("/"))
            stream = f.read(None)
            chunks = []
            while True:
                chunk = stream.read_bytes(1 << 20, None).get_data()
                if not chunk:
                    break
                chunks.append(bytes(chunk))
            stream.close(None)
        except GLib.Error:
            return None
        return b"".join(chunks)
