"""Sysroots: deployments, origins, boot entries, the lock (libostree ``Sysroot``).

Not booted (directory sysroots, image builds, tests): ``deploy_tree`` +
``simple_write_deployment``.  Booted: ``stage_tree``; the staged deployment
is finalized at shutdown by ostree-finalize-staged (which also carries /etc
edits made after staging into it).  Every mutation happens under the
sysroot lock.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gi

gi.require_version("OSTree", "1.0")
from gi.repository import Gio, GLib, OSTree  # noqa: E402

from ..errors import AptOstreeError, PermissionDenied, RepoError, SysrootError  # noqa: E402
from .repo import Repo  # noqa: E402


@dataclass(frozen=True)
class Deployment:
    """What status shows about one deployment."""

    index: int
    osname: str
    checksum: str
    serial: int
    origin_refspec: str | None
    booted: bool
    staged: bool
    pinned: bool
    unlocked: str
    kargs: tuple[str, ...]
    bootcsum: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.osname}-{self.checksum}.{self.serial}"


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """libostree prints progress ("Freed objects: ...") on stdout; keep stdout for results."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


class Sysroot:
    def __init__(self, path: Path, sysroot: OSTree.Sysroot) -> None:
        self.path = path
        self._sysroot = sysroot

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, must_exist: bool = True) -> Sysroot:
        p = Path(path)
        if must_exist:
            _check_sysroot_dir(p)
        sysroot = OSTree.Sysroot.new(Gio.File.new_for_path(os.fspath(p)))
        if must_exist:
            try:
                sysroot.load(None)
            except GLib.Error as e:
                raise _load_error(p, e) from e
        return cls(p, sysroot)

    @property
    def gobject(self) -> OSTree.Sysroot:
        return self._sysroot

    def reload(self) -> None:
        self._sysroot.load(None)

    def initialize(self, osname: str) -> None:
        try:
            self._sysroot.ensure_initialized(None)
            self._sysroot.load(None)
            self._sysroot.init_osname(osname, None)
            self._sysroot.load(None)
        except GLib.Error as e:
            raise SysrootError(f"cannot initialize sysroot {self.path}: {e.message}") from e

    def repo(self) -> Repo:
        _, repo = self._sysroot.get_repo(None)
        return Repo(repo, self.path / "ostree/repo")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the sysroot lock; wait (saying so) if another process has it.

        The deployments are loaded again once the lock is held: another
        process may have changed them since ``open``, and a transaction that
        started from the old list would silently drop that change.
        """
        try:
            _, acquired = self._sysroot.try_lock()
            if not acquired:
                print("Waiting for the sysroot lock...", file=sys.stderr, flush=True)
                self._sysroot.lock()
        except GLib.Error as e:
            if e.matches(Gio.io_error_quark(), Gio.IOErrorEnum.PERMISSION_DENIED):
                raise PermissionDenied(f"cannot lock the sysroot {self.path}: permission denied",
                                       hint="run this command as root") from e
            raise SysrootError(f"cannot lock the sysroot {self.path}: {e.message}") from e
        try:
            self._sysroot.load(None)
        except GLib.Error as e:
            self._sysroot.unlock()
            raise _load_error(self.path, e) from e
        try:
            yield
        finally:
            self._sysroot.unlock()

    # ---- reading --------------------------------------------------------

    def _raw_deployments(self) -> list[OSTree.Deployment]:
        return list(self._sysroot.get_deployments())

    def _info(self, index: int, d: OSTree.Deployment) -> Deployment:
        booted = self._sysroot.get_booted_deployment()
        origin = d.get_origin()
        refspec = None
        if origin is not None:
            try:
                refspec = origin.get_string("origin", "refspec")
            except GLib.Error:
                refspec = None
        bootconfig = d.get_bootconfig()
        options = bootconfig.get("options") if bootconfig else None
        staged = d.is_staged() if hasattr(d, "is_staged") else False
        return Deployment(
            index=index, osname=d.get_osname(), checksum=d.get_csum(),
            serial=d.get_deployserial(), origin_refspec=refspec,
            booted=booted is not None and booted.equal(d), staged=bool(staged),
            pinned=bool(d.is_pinned()),
            unlocked=OSTree.Deployment.unlocked_state_to_string(d.get_unlocked()),
            kargs=split_kargs(options or ""), bootcsum=d.get_bootcsum(),
            path=self.path / self._sysroot.get_deployment_dirpath(d),
        )

    def deployments(self) -> list[Deployment]:
        return [self._info(i, d) for i, d in enumerate(self._raw_deployments())]

    def origin(self, index: int) -> GLib.KeyFile:
        d = self._raw_deployments()[index]
        origin = d.get_origin()
        if origin is None:
            raise SysrootError(f"deployment {index} has no origin file")
        return origin

    def is_booted(self) -> bool:
        return self._sysroot.get_booted_deployment() is not None

    # ---- writing --------------------------------------------------------

    def new_origin(self, refspec: str) -> GLib.KeyFile:
        return self._sysroot.origin_new_from_refspec(refspec)

    def booted(self) -> Deployment | None:
        return next((d for d in self.deployments() if d.booted), None)

    def deploy(self, osname: str, checksum: str, origin: GLib.KeyFile, *,
               merge_index: int | None, kargs: Sequence[str] | None = None) -> None:
        """Deploy ``checksum`` as the new default; the merge deployment stays as rollback.

        On a booted system the new deployment is staged (it replaces an
        earlier staged one) and becomes the default at shutdown.
        """
        raw = self._raw_deployments()
        merge = raw[merge_index] if merge_index is not None else None
        argv = list(kargs) if kargs is not None else None
        booted = self._sysroot.get_booted_deployment()
        if booted is not None and booted.get_osname() == osname:
            try:
                with _stdout_to_stderr():
                    self._sysroot.stage_tree(osname, checksum, origin, merge, argv, None)
            except GLib.Error as e:
                raise SysrootError(f"cannot stage {checksum[:12]}: {e.message}") from e
            finally:
                self._sysroot.load(None)
            return
        try:
            _, new = self._sysroot.deploy_tree(osname, checksum, origin, merge, argv, None)
            with _stdout_to_stderr():
                self._sysroot.simple_write_deployment(
                    osname, new, merge, OSTree.SysrootSimpleWriteDeploymentFlags.NONE, None)
        except GLib.Error as e:
            raise SysrootError(f"cannot deploy {checksum[:12]}: {e.message}") from e
        finally:
            self._sysroot.load(None)

    def reorder(self, order: Sequence[int]) -> None:
        raw = self._raw_deployments()
        try:
            with _stdout_to_stderr():
                self._sysroot.write_deployments([raw[i] for i in order], None)
        except GLib.Error as e:
            raise SysrootError(f"cannot write deployments: {e.message}") from e
        finally:
            self._sysroot.load(None)

    def remove(self, indexes: Sequence[int]) -> None:
        raw = self._raw_deployments()
        keep = [d for i, d in enumerate(raw) if i not in set(indexes)]
        self.write(keep)

    def write(self, deployments: list[OSTree.Deployment]) -> None:
        try:
            with _stdout_to_stderr():
                self._sysroot.write_deployments(deployments, None)
        except GLib.Error as e:
            raise SysrootError(f"cannot write deployments: {e.message}") from e
        finally:
            self._sysroot.load(None)

    def set_pinned(self, index: int, pinned: bool) -> None:
        d = self._raw_deployments()[index]
        try:
            self._sysroot.deployment_set_pinned(d, pinned)
        except GLib.Error as e:
            raise SysrootError(f"cannot change the pin of deployment {index}: {e.message}") from e
        self._sysroot.load(None)

    def unlock(self, index: int, state: str) -> None:
        """An overlay on the (booted) deployment's /usr (``ostree admin unlock``).

        ``state``: "transient" (read-only, gone at reboot), "development"
        (writable until reboot) or "hotfix" (kept, with a rollback clone).
        """
        d = self._raw_deployments()[index]
        unlocked = getattr(OSTree.DeploymentUnlockedState, state.upper())
        try:
            with _stdout_to_stderr():
                self._sysroot.deployment_unlock(d, unlocked, None)
        except GLib.Error as e:
            raise SysrootError(f"cannot unlock /usr: {e.message}") from e
        finally:
            self._sysroot.load(None)

    def cleanup(self) -> None:
        """Remove unused deployment directories, boot files and unreferenced objects."""
        try:
            with _stdout_to_stderr():
                self._sysroot.cleanup(None)
        except GLib.Error as e:
            raise SysrootError(f"cleanup failed: {e.message}") from e


def split_kargs(options: str) -> tuple[str, ...]:
    """Kernel arguments as the kernel splits them: whitespace inside double quotes is kept."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in options:
        if ch == '"':
            quoted = not quoted
        if ch.isspace() and not quoted:
            if current:
                args.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        args.append("".join(current))
    return tuple(args)


def _check_sysroot_dir(p: Path) -> None:
    """A clear error for a sysroot path that is missing, unreadable or not a sysroot."""
    try:
        if not p.is_dir():
            raise SysrootError(f"{p}: no such directory" if not p.exists()
                               else f"{p}: not a directory")
        if not (p / "ostree/repo/config").is_file():
            raise SysrootError(f"{p}: not an OSTree sysroot (no ostree/repo)",
                               hint="create one with 'apt-ostree admin init'")
    except PermissionError as e:
        raise PermissionDenied(f"{p}: cannot read the sysroot: permission denied",
                               hint="run this command as root") from e
    except OSError as e:
        raise SysrootError(f"{p}: cannot read the sysroot: {e.strerror}") from e


def _load_error(p: Path, error: GLib.Error) -> AptOstreeError:
    """The error for a sysroot libostree cannot load, naming a broken origin file if that is why."""
    for origin in sorted(p.glob("ostree/deploy/*/deploy/*.origin")):
        try:
            text = origin.read_bytes().decode()
            GLib.KeyFile().load_from_data(text, len(text.encode()), GLib.KeyFileFlags.NONE)
            problem = None
        except OSError as e:
            problem = e.strerror
        except UnicodeDecodeError:
            problem = "not valid UTF-8"
        except GLib.Error as e:
            problem = e.message
        if problem:
            return SysrootError(f"{p}: the origin file {origin.relative_to(p)} is unreadable: {problem}",
                                hint="restore it: it needs an [origin] group with a refspec= line")
    if error.matches(Gio.io_error_quark(), Gio.IOErrorEnum.PERMISSION_DENIED):
        return PermissionDenied(f"{p}: cannot load the sysroot: permission denied",
                                hint="run this command as root")
    return SysrootError(f"{p}: cannot load the sysroot: {error.message}")


def origin_get(origin: GLib.KeyFile, group: str, key: str) -> str | None:
    try:
        return origin.get_string(group, key)  # type: ignore[no-any-return]
    except GLib.Error:
        return None


def copy_origin(origin: GLib.KeyFile) -> GLib.KeyFile:
    new = GLib.KeyFile()
    data, _ = origin.to_data()
    new.load_from_data(data, len(data.encode()), GLib.KeyFileFlags.KEEP_COMMENTS)
    return new


__all__ = ["Deployment", "RepoError", "Sysroot", "SysrootError", "copy_origin", "origin_get",
           "split_kargs"]
