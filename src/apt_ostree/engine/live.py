"""Changes to the running system: apply-live and usroverlay.

apply-live brings the booted system's /usr to another commit (the pending
deployment's, or ``--target``) without a reboot:

1. the booted deployment is unlocked *transiently* (libostree: an overlay on
   /usr, read-only for everyone, gone at reboot);
2. the difference between what /usr shows now (the booted commit, or the
   last live commit) and the target is computed from the repository;
   changing or removing files of the running system needs
   ``--allow-replacement`` (package state under /usr always follows);
3. a helper process (``liveapply``) remounts its private copy of /usr
   read-write and checks the changed paths out into it;
4. /etc gets the target's new default files, and changed defaults where the
   administrator left the file alone; users and groups the target adds are
   appended; the target's new tmpfiles.d entries are applied.

The live state (``/run/apt-ostree/live/DEPLOYMENT``) records the commit /usr
shows; it is in /run, so a reboot forgets it together with the overlay.  An
interrupted run leaves "inprogress" set; the next run finishes the job.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AptOstreeError, Busy, NothingChanged, SysrootError, UsageError
from ..ostree import Deployment, Repo, Sysroot
from ..ostree.diff import TreeDiff, diff_commits
from ..progress import NullReporter, Reporter
from .deploy import find_revision, pending_or_current, read_origin, require_root

LIVE_DIR = Path("/run/apt-ostree/live")
LIVE_LOCK = Path("/run/apt-ostree/live.lock")
# Package state that describes /usr rather than being part of a program:
# always follows the target.
STATE_PREFIXES = ("/usr/share/dpkg/database/", "/usr/lib/apt-ostree/state/")
USER_FILES = ("passwd", "group", "shadow", "gshadow")


@dataclass(frozen=True)
class LiveState:
    commit: str | None = None        # what /usr shows (None: the booted commit)
    inprogress: str | None = None    # a target being applied


def _state_path(d: Deployment) -> Path:
    return LIVE_DIR / f"{d.checksum}.{d.serial}"


def read_state(d: Deployment) -> LiveState:
    try:
        data = json.loads(_state_path(d).read_text())
        return LiveState(commit=data.get("commit"), inprogress=data.get("inprogress"))
    except (OSError, ValueError, AttributeError):
        return LiveState()


def _write_state(d: Deployment, state: LiveState) -> None:
    path = _state_path(d)
    if state == LiveState():
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"commit": state.commit, "inprogress": state.inprogress}))
    os.replace(tmp, path)


@contextmanager
def _live_lock() -> Iterator[None]:
    """One live change at a time; a second one is refused at once, not queued."""
    LIVE_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LIVE_LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy("another live update of this system is in progress",
                       hint="wait for it to finish, then try again") from None
        yield


def booted_deployment(sysroot: Sysroot, verb: str) -> Deployment:
    booted = sysroot.booted()
    if booted is None:
        raise SysrootError(f"{verb}: the system is not booted into an OSTree deployment"
                           f"{'' if str(sysroot.path) == '/' else f' ({sysroot.path} is not /)'}")
    return booted


@dataclass
class LiveResult:
    commit: str
    previous: str
    diff: TreeDiff
    etc_added: list[str] = field(default_factory=list)
    etc_kept: list[str] = field(default_factory=list)


def _is_state(path: str) -> bool:
    return path.startswith(STATE_PREFIXES) or path.rstrip("/") + "/" in STATE_PREFIXES


def replacements(diff: TreeDiff) -> list[str]:
    """Files of the running system that the change alters or removes (config and package state aside)."""
    # A path whose type changes (removed and added) is a replacement too.
    return sorted(p for p in diff.modified + diff.removed
                  if p.startswith("/usr/") and not p.startswith("/usr/etc/") and not _is_state(p))


def apply_live(sysroot: Sysroot, *, target: str | None = None, reset: bool = False,
               allow_replacement: bool = False, reporter: Reporter | None = None) -> LiveResult:
    reporter = reporter or NullReporter()
    require_root("apply-live")
    if reset and target:
        raise UsageError("apply-live: --reset and --target exclude each other")
    booted = booted_deployment(sysroot, "apply-live")
    if booted.unlocked not in ("none", "transient"):
        raise SysrootError(f"apply-live: /usr is unlocked ({booted.unlocked}): "
                           "live updates need the booted commit underneath")
    with _live_lock(), sysroot.lock():
        booted = booted_deployment(sysroot, "apply-live")
        repo = sysroot.repo()
        state = read_state(booted)
        shown = state.commit or booted.checksum
        if reset:
            wanted = booted.checksum
            allow_replacement = True
        elif target:
            wanted = _resolve_target(sysroot, booted, target)
        else:
            pending = pending_or_current(sysroot)
            if pending.index == booted.index:
                raise SysrootError("apply-live: there is no pending deployment to apply",
                                   hint="install packages first, or name a commit with --target")
            wanted = pending.checksum
        if wanted == shown and state.inprogress is None:
            raise NothingChanged(f"The running system already shows {wanted[:12]}." if not reset
                                 else "No live changes to reset.")
        with reporter.task(f"Computing the changes {shown[:12]} -> {wanted[:12]}"):
            diff = diff_commits(repo, shown, wanted, "/usr")
            if state.inprogress and state.inprogress != wanted:
                # An interrupted run may have added some of its target's files already.
                extra = diff_commits(repo, shown, state.inprogress, "/usr")
                diff.removed += [p for p in extra.added if p not in diff.added]
        replaced = replacements(diff)
        if replaced and not allow_replacement:
            shown_paths = ", ".join(replaced[:3]) + (", ..." if len(replaced) > 3 else "")
            raise AptOstreeError(
                f"apply-live: {wanted[:12]} changes or removes {len(replaced)} file(s) of the "
                f"running system ({shown_paths})",
                hint="use --allow-replacement to replace them in the running system")
        if booted.unlocked == "none":
            with reporter.task("Unlocking /usr (transient overlay)"):
                sysroot.unlock(booted.index, "transient")
        _write_state(booted, LiveState(commit=state.commit, inprogress=wanted))
        result = LiveResult(commit=wanted, previous=shown, diff=diff)
        with reporter.task(f"Applying {len(diff.added)} added, {len(diff.modified)} changed, "
                           f"{len(diff.removed)} removed path(s) to /usr"):
            _run_helper(repo.path, wanted, diff)
        with reporter.task("Updating /etc"):
            _update_etc(repo, shown, wanted, diff, result)
        _apply_tmpfiles(diff, reporter)
        _write_state(booted, LiveState() if wanted == booted.checksum
                     else LiveState(commit=wanted))
        return result


def _resolve_target(sysroot: Sysroot, booted: Deployment, target: str) -> str:
    repo = sysroot.repo()
    for d in sysroot.deployments():
        if d.checksum == target or (len(target) >= 6 and d.checksum.startswith(target)):
            return d.checksum
    try:
        resolved = repo.resolve(target, allow_missing=True)
    except AptOstreeError:
        resolved = None
    if resolved:
        return resolved
    origin = read_origin(sysroot, booted)
    return find_revision(repo, origin.refspec, target)


def _run_helper(repo: Path, commit: str, diff: TreeDiff) -> None:
    # A type change is removed, then checked out.
    plan = {"repo": str(repo), "commit": commit, "remove": sorted(diff.removed),
            "checkout": sorted(diff.added), "replace": sorted(diff.modified)}
    proc = subprocess.run([sys.executable, "-m", "apt_ostree.engine.liveapply"],
                          input=json.dumps(plan), capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        message = lines[-1].removeprefix("error: ") if lines else f"exit {proc.returncode}"
        raise AptOstreeError(f"apply-live: {message}",
                             hint="run apply-live again to finish, or apply-live --reset")


def _same_content(path: Path, data: bytes | None) -> bool:
    if data is None or path.is_symlink() or not path.is_file():
        return False
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _copy_default(src: Path, dest: Path) -> None:
    """Copy a default from /usr/etc to /etc (symlinks as links, directories whole)."""
    if src.is_symlink():
        dest.symlink_to(os.readlink(src))
    elif src.is_dir():
        shutil.copytree(src, dest, symlinks=True)
    else:
        tmp = dest.with_name(f".{dest.name}.apt-ostree-new")
        shutil.copy2(src, tmp)
        st = src.stat()
        os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, dest)


def _update_etc(repo: Repo, old: str, new: str, diff: TreeDiff, result: LiveResult) -> None:
    usr_etc, etc = Path("/usr/etc"), Path("/etc")

    def rel(p: str) -> str:
        return p[len("/usr/etc/"):]

    for p in diff.added:
        if p.startswith("/usr/etc/") and rel(p) not in USER_FILES:
            dest = etc / rel(p)
            if not os.path.lexists(dest) and dest.parent.is_dir():
                _copy_default(usr_etc / rel(p), dest)
                result.etc_added.append(str(dest))
    for p in diff.modified + diff.removed:
        if not p.startswith("/usr/etc/") or p in diff.added or rel(p) in USER_FILES:
            continue
        dest = etc / rel(p)
        if _same_content(dest, repo.read_file(old, p)):
            if p in diff.modified:
                _copy_default(usr_etc / rel(p), dest)
            else:
                dest.unlink()
        elif os.path.lexists(dest):
            result.etc_kept.append(str(dest))
    _append_new_users(repo, old, new, [rel(p) for p in diff.added + diff.modified
                                       if p.startswith("/usr/etc/") and rel(p) in USER_FILES])


def _append_new_users(repo: Repo, old: str, new: str, changed: list[str]) -> None:
    """Users and groups the target's packages created: appended to /etc where missing."""
    from .layer import account_entries, append_users

    new_users: dict[str, list[str]] = {}
    for name in changed:
        before = account_entries((repo.read_file(old, f"/usr/etc/{name}") or b"").decode(errors="replace"))
        after = account_entries((repo.read_file(new, f"/usr/etc/{name}") or b"").decode(errors="replace"))
        lines = [line for user, line in after.items() if user not in before]
        if lines:
            new_users[name] = lines
    if new_users:
        append_users(Path("/etc"), new_users)


def _apply_tmpfiles(diff: TreeDiff, reporter: Reporter) -> None:
    confs = [p for p in diff.added + diff.modified
             if p.startswith("/usr/lib/tmpfiles.d/") and p.endswith(".conf")]
    if any(p == "/usr/lib/tmpfiles.d" for p in diff.added):
        confs += [str(c) for c in Path("/usr/lib/tmpfiles.d").glob("*.conf")]
    if not confs:
        return
    tool = shutil.which("systemd-tmpfiles")
    if tool is None:
        reporter.message("systemd-tmpfiles is not installed: new tmpfiles.d entries apply at the next boot")
        return
    with reporter.task("Applying tmpfiles.d entries"):
        proc = subprocess.run([tool, "--create", *sorted(set(confs))], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        reporter.message(f"systemd-tmpfiles: {lines[-1] if lines else f'exit {proc.returncode}'}")


# ---- usroverlay ----------------------------------------------------------------


def usroverlay(sysroot: Sysroot, *, hotfix: bool = False) -> Deployment:
    """A writable overlay on /usr: until reboot, or (``hotfix``) kept, with a rollback clone."""
    require_root("usroverlay")
    booted = booted_deployment(sysroot, "usroverlay")
    with sysroot.lock():
        booted = booted_deployment(sysroot, "usroverlay")
        if booted.unlocked != "none":
            raise SysrootError(f"usroverlay: /usr is already unlocked ({booted.unlocked})")
        sysroot.unlock(booted.index, "hotfix" if hotfix else "development")
        after = sysroot.booted()
        assert after is not None
        return after
