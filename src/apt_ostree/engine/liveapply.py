"""The writing half of apply-live, run as its own process (``python3 -m apt_ostree.engine.liveapply``).

The live /usr is an overlay mounted read-only for everyone.  This process
moves into a mount namespace of its own first thing (while it is still one
thread: unshare(2) refuses a threaded process), remounts its copy of /usr
read-write there, and checks the plan's paths out of the repository into it.
Nobody else ever sees a writable /usr.  libostree copies the files: the
overlay is another filesystem than the repository, so no checked-out file
shares an inode with an object.

Reads a JSON plan on stdin: ``{"repo": PATH, "commit": CHECKSUM,
"remove": [PATH...], "checkout": [PATH...], "replace": [PATH...]}``: removed
paths go first, then new paths are checked out, then changed files replaced.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from ..mounts import private_mount_namespace_with_writable

AT_FDCWD = -100
STAGING = ".apt-ostree-live-new"


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def main() -> int:
    plan = json.load(sys.stdin)
    try:
        private_mount_namespace_with_writable("/usr")
    except OSError as e:
        print(f"error: cannot make /usr writable for the live update: {e.strerror}", file=sys.stderr)
        return 1
    import gi

    gi.require_version("OSTree", "1.0")
    from gi.repository import Gio, GLib, OSTree

    repo = OSTree.Repo.new(Gio.File.new_for_path(plan["repo"]))
    try:
        repo.open(None)
        _, root, _ = repo.read_commit(plan["commit"], None)
        for path in plan["remove"]:
            _remove(path)
        for path in plan["checkout"]:  # left by an interrupted run: checked out again
            _remove(path)

        def checkout(path: str, dest: str) -> None:
            opts = OSTree.RepoCheckoutAtOptions()
            opts.mode = OSTree.RepoCheckoutMode.NONE
            opts.subpath = path
            opts.enable_fsync = False
            repo.checkout_at(opts, AT_FDCWD, dest, plan["commit"], None)

        for path in plan["checkout"]:  # new: a directory as ``path``, a file into its parent
            kind = root.resolve_relative_path(path.lstrip("/")).query_file_type(
                Gio.FileQueryInfoFlags.NOFOLLOW_SYMLINKS, None)
            checkout(path, path if kind == Gio.FileType.DIRECTORY else os.path.dirname(path))
        # Changed files: checked out beside, then renamed over the old one (no moment
        # without the file).
        staging = os.path.join("/usr", STAGING)
        try:
            for path in plan["replace"]:
                _remove(staging)
                os.mkdir(staging, 0o700)
                checkout(path, staging)
                os.replace(os.path.join(staging, os.path.basename(path)), path)
        finally:
            _remove(staging)
    except (GLib.Error, OSError) as e:
        print(f"error: live update of /usr failed: {getattr(e, 'message', None) or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
