"""The one exception hierarchy of apt-ostree.

Every error a user can cause is an ``AptOstreeError``: it carries one clear
message, an optional hint, the CLI exit code and the D-Bus error name it maps
to.  Library code raises these; only the CLI's top-level handler turns them
into a line on stderr and an exit code.
"""

from __future__ import annotations

from collections.abc import Sequence


class AptOstreeError(Exception):
    """Base class: a failure the user should read about, not a bug."""

    exit_code = 1
    dbus_name = "org.aptostree1.Error.Failed"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(AptOstreeError):
    """The command line itself is wrong."""

    exit_code = 2
    dbus_name = "org.aptostree1.Error.InvalidArguments"


class NothingChanged(AptOstreeError):
    """The request was valid but there is nothing to do (exit 77)."""

    exit_code = 77
    dbus_name = "org.aptostree1.Error.NothingChanged"


class TreefileError(AptOstreeError):
    """A treefile could not be read or is invalid; lists every problem."""

    dbus_name = "org.aptostree1.Error.InvalidTreefile"

    def __init__(self, path: str, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"{path}: {self.problems[0]}"
        else:
            lines = "\n".join(f"  {path}: {p}" for p in self.problems)
            message = f"{path}: {len(self.problems)} problems:\n{lines}"
        super().__init__(message)


class LockfileError(AptOstreeError):
    """A lockfile is unreadable or names versions that no longer exist."""


class SourcesError(AptOstreeError):
    """An apt source is unreachable, unsigned or malformed."""

    dbus_name = "org.aptostree1.Error.Sources"


class PackageNotFound(AptOstreeError):
    """A requested package does not exist in the configured sources."""

    dbus_name = "org.aptostree1.Error.PackageNotFound"


class DepsolveError(AptOstreeError):
    """The requested package set cannot be resolved."""

    dbus_name = "org.aptostree1.Error.Depsolve"


class FetchError(AptOstreeError):
    """Downloading packages failed."""

    dbus_name = "org.aptostree1.Error.Fetch"


class CommandFailed(AptOstreeError):
    """A subprocess exited non-zero; the message carries its output's tail."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str = "",
                 *, what: str | None = None) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        name = what or self.argv[0]
        message = f"{name} failed (exit status {returncode})"
        tail = output.strip()
        if tail:
            message += ":\n" + "\n".join(tail.splitlines()[-25:])
        super().__init__(message)


class ScriptFailed(CommandFailed):
    """A postprocess or maintainer script failed."""

    dbus_name = "org.aptostree1.Error.ScriptFailed"


class RepoError(AptOstreeError):
    """An OSTree repository operation failed or a ref/revision is unknown."""

    dbus_name = "org.aptostree1.Error.Repo"


class LayoutError(AptOstreeError):
    """A tree cannot be adapted to the OSTree layout."""


class SysrootError(AptOstreeError):
    """A sysroot is missing, uninitialised, or a deployment operation failed."""

    dbus_name = "org.aptostree1.Error.Sysroot"


class PermissionDenied(AptOstreeError):
    """The caller may not do this (not root, or refused by polkit)."""

    dbus_name = "org.aptostree1.Error.PermissionDenied"


class Cancelled(AptOstreeError):
    """The transaction was cancelled at a safe point; nothing was changed."""

    dbus_name = "org.aptostree1.Error.Cancelled"


class Busy(AptOstreeError):
    """Another transaction is running."""

    dbus_name = "org.aptostree1.Error.Busy"


class DaemonError(AptOstreeError):
    """The daemon cannot be reached or failed."""

    dbus_name = "org.aptostree1.Error.Daemon"
