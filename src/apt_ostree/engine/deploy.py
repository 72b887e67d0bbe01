"""Sysroot transactions: init, upgrade, deploy, rebase, rollback, cleanup, kargs, pin.

Each function takes an open ``Sysroot`` (or a path for ``admin_init``), holds
the sysroot lock for its changes and leaves the previous default deployment
in place as the rollback target.  libostree does the storage, the /etc merge,
the boot entries and the atomic swap.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..compose.metadata import packages_from_metadata
from ..errors import NothingChanged, PermissionDenied, RepoError, SysrootError, UsageError
from ..ostree import Deployment, Repo, Sysroot
from ..progress import NullReporter, Reporter
from .db import PackageDiff, diff_packages
from .origin import Origin, split_refspec

CLIENT_CACHE = "ostree/apt-ostree/cache"


def require_root(verb: str) -> None:
    if os.geteuid() != 0:
        raise PermissionDenied(f"{verb}: this operation requires root privileges")


def repo_url(repo: str) -> str:
    if "://" in repo:
        return repo
    p = Path(repo).resolve()
    if not (p / "config").is_file():
        raise RepoError(f"{repo}: not an OSTree repository")
    return f"file://{p}"


def os_release_id(repo: Repo, checksum: str) -> str | None:
    for path in ("usr/lib/os-release", "usr/etc/os-release"):
        data = repo.read_file(checksum, path)
        if data:
            for line in data.decode(errors="replace").splitlines():
                if line.startswith("ID="):
                    return line[3:].strip().strip('"') or None
    return None


def admin_init(path: Path, repo: str, ref: str, *, osname: str | None = None,
               kargs: Sequence[str] = (), reporter: Reporter | None = None) -> Deployment:
    """Create a sysroot at ``path``, point a remote at ``repo`` and deploy ``ref``."""
    reporter = reporter or NullReporter()
    url = repo_url(repo)
    if (path / "ostree/deploy").is_dir() and any((path / "ostree/deploy").iterdir()):
        raise SysrootError(f"{path}: already an initialized sysroot")
    path.mkdir(parents=True, exist_ok=True)
    sysroot = Sysroot.open(path, must_exist=False)
    created = not (path / "ostree").exists()
    try:
        sysroot.gobject.ensure_initialized(None)
        sysroot.reload()
        srepo = sysroot.repo()
        with reporter.task(f"Pulling {ref}"):
            srepo.pull(url, [ref])
        checksum = srepo.resolve(ref)
        assert checksum is not None
        name = osname or os_release_id(srepo, checksum) or "debian"
        srepo.set_ref(None, ref, None)
        srepo.remote_add(name, url)
        srepo.set_ref(name, ref, checksum)
        sysroot.initialize(name)
        with sysroot.lock(), reporter.task(f"Deploying {checksum[:12]}"):
            origin = Origin(refspec=f"{name}:{ref}")
            sysroot.deploy(name, checksum, origin.to_keyfile(), merge_index=None, kargs=list(kargs))
    except BaseException:
        if created:
            shutil.rmtree(path / "ostree", ignore_errors=True)
            shutil.rmtree(path / "boot", ignore_errors=True)
        raise
    return sysroot.deployments()[0]


# ---- helpers ---------------------------------------------------------------


def current(sysroot: Sysroot) -> Deployment:
    """The deployment changes start from: the booted one, else the default."""
    deployments = sysroot.deployments()
    if not deployments:
        raise SysrootError(f"{sysroot.path}: no deployments")
    return next((d for d in deployments if d.booted), deployments[0])


def pending_or_current(sysroot: Sysroot) -> Deployment:
    """The deployment a change builds on: the default one of the current OS.

    On a booted system with a pending (staged) deployment that is the pending
    one, so that ``install A`` then ``install B`` before a reboot deploys
    both; /etc is still merged from the booted deployment.
    """
    cur = current(sysroot)
    return next(d for d in sysroot.deployments() if d.osname == cur.osname)


def read_origin(sysroot: Sysroot, d: Deployment) -> Origin:
    try:
        origin = Origin.from_keyfile(sysroot.origin(d.index))
    except Exception as e:
        raise SysrootError(f"cannot read the origin of deployment {d.index}: {e}") from e
    if not origin.refspec:
        raise SysrootError(f"the origin of deployment {d.index} names no refspec")
    return origin


def base_checksum(repo: Repo, checksum: str) -> str:
    commit = repo.read_commit(checksum)
    if commit.metadata.get("apt-ostree.clientlayer") and commit.parent:
        return commit.parent
    return checksum


def _pull(repo: Repo, origin: Origin, refs: list[str], reporter: Reporter, *,
          commit_only: bool = False, depth: int = 0, timestamp_check: bool = False) -> None:
    if origin.remote is None:
        return  # a local ref: nothing to fetch
    with reporter.task(f"Pulling {', '.join(refs)} from {origin.remote}"):
        repo.pull(origin.remote, refs, commit_only=commit_only, depth=depth,
                  timestamp_check=timestamp_check)


def commit_diff(repo: Repo, old: str, new: str) -> PackageDiff:
    from ..apt.versions import compare_versions  # python-apt: only when diffing
    return diff_packages(packages_from_metadata(repo.read_commit(old).metadata),
                         packages_from_metadata(repo.read_commit(new).metadata), compare_versions)


@dataclass
class UpgradeResult:
    checksum: str
    version: str | None
    deployed: bool
    diff: PackageDiff | None = None
    previous: str | None = None
    messages: list[str] = field(default_factory=list)


def _deploy_new(sysroot: Sysroot, cur: Deployment, checksum: str, origin: Origin,
                reporter: Reporter, kargs: Sequence[str] | None = None,
                relayer: bool = True) -> None:
    """Deploy the base ``checksum`` with the origin's package requests re-applied."""
    from .layer import deploy_layered, sync_base_refs  # layer builds on this module

    if relayer:
        deploy_layered(sysroot, cur, checksum, origin, reporter=reporter, kargs=kargs)
        return
    sync_base_refs(sysroot, extra=[base_checksum(sysroot.repo(), checksum)])
    with reporter.task(f"Deploying {checksum[:12]}"):
        sysroot.deploy(cur.osname, checksum, origin.to_keyfile(), merge_index=cur.index,
                       kargs=kargs)
    sync_base_refs(sysroot)


def _with_packages(sysroot: Sysroot, origin: Origin, install: Sequence[str],
                   uninstall: Sequence[str]) -> Origin:
    """``upgrade/deploy/rebase --install X --uninstall Y``: the origin's requests changed too."""
    if not (install or uninstall):
        return origin
    from .layer import LayeringChange, apply_change  # layer builds on this module

    return apply_change(sysroot, origin, LayeringChange(install=tuple(install),
                                                        uninstall=tuple(uninstall)),
                        idempotent=True, allow_inactive=True)


# ---- transactions ------------------------------------------------------------


def upgrade(sysroot: Sysroot, *, check: bool = False, preview: bool = False,
            allow_downgrade: bool = False, install: Sequence[str] = (),
            uninstall: Sequence[str] = (), reporter: Reporter | None = None) -> UpgradeResult:
    reporter = reporter or NullReporter()
    if not (check or preview):
        require_root("upgrade")
    with sysroot.lock():
        cur = current(sysroot)
        start = pending_or_current(sysroot)
        origin = read_origin(sysroot, start)
        repo = sysroot.repo()
        _pull(repo, origin, [origin.ref], reporter, commit_only=check or preview,
              timestamp_check=not allow_downgrade)
        new = repo.resolve(origin.refspec)
        assert new is not None
        base = base_checksum(repo, start.checksum)
        commit = repo.read_commit(new)
        new_origin = _with_packages(sysroot, origin.pinned_to(None), install, uninstall)
        if new == base and (check or preview or new_origin == origin):
            raise NothingChanged("No upgrade available.")
        # rpm-ostree: an upgrade never silently goes back in time (a server
        # reset, or a replayed old commit).
        if not allow_downgrade and commit.timestamp < repo.read_commit(base).timestamp:
            raise RepoError(f"{origin.refspec} now points at {new[:12]}, which is older than the "
                            f"deployed {base[:12]}: refusing to downgrade",
                            hint="use 'upgrade --allow-downgrade' or 'deploy REVISION' to go back")
        if check or preview:
            diff = commit_diff(repo, base, new) if preview else None
            return UpgradeResult(new, commit.version, deployed=False, diff=diff, previous=base)
        _deploy_new(sysroot, cur, new, new_origin, reporter)
        return UpgradeResult(new, commit.version, deployed=True, previous=base,
                             diff=commit_diff(repo, base, new))


MIN_CHECKSUM_PREFIX = 4


def find_revision(repo: Repo, refspec: str, revision: str) -> str:
    """A commit of ``refspec``'s history: by checksum, else by version, else by checksum prefix.

    A version wins over a prefix ("20250101" is a plausible version and a
    plausible prefix); the newest commit carrying a version wins; an
    ambiguous prefix is refused.
    """
    commits = list(repo.history(refspec))
    rev = revision.lower()
    exact = [c for c in commits if c.checksum == rev]
    by_version = [c for c in commits if c.version == revision]
    if exact or by_version:
        return (exact or by_version)[0].checksum
    if len(rev) >= MIN_CHECKSUM_PREFIX and all(ch in "0123456789abcdef" for ch in rev):
        prefixed = [c for c in commits if c.checksum.startswith(rev)]
        if len(prefixed) > 1:
            raise RepoError(f"revision {revision!r} is ambiguous in the history of {refspec}: "
                            + ", ".join(c.checksum[:12] for c in prefixed))
        if prefixed:
            return prefixed[0].checksum
    raise RepoError(f"revision {revision!r} not found in the history of {refspec}")


def deploy_revision(sysroot: Sysroot, revision: str, reporter: Reporter | None = None, *,
                    install: Sequence[str] = (), uninstall: Sequence[str] = ()) -> str:
    reporter = reporter or NullReporter()
    require_root("deploy")
    with sysroot.lock():
        cur = current(sysroot)
        start = pending_or_current(sysroot)
        origin = read_origin(sysroot, start)
        repo = sysroot.repo()
        _pull(repo, origin, [origin.ref], reporter, commit_only=True, depth=-1)
        checksum = find_revision(repo, origin.refspec, revision)
        new_origin = _with_packages(sysroot, origin.pinned_to(checksum), install, uninstall)
        if checksum == base_checksum(repo, start.checksum) \
                and new_origin == origin.pinned_to(checksum):
            raise NothingChanged(f"{revision} ({checksum[:12]}) is already the default deployment")
        _pull(repo, origin, [checksum], reporter)
        _deploy_new(sysroot, cur, checksum, new_origin, reporter)
        return checksum


def rebase(sysroot: Sysroot, refspec: str, reporter: Reporter | None = None, *,
           install: Sequence[str] = (), uninstall: Sequence[str] = ()) -> str:
    reporter = reporter or NullReporter()
    require_root("rebase")
    with sysroot.lock():
        cur = current(sysroot)
        origin = read_origin(sysroot, pending_or_current(sysroot))
        remote, ref = split_refspec(refspec)
        if remote is None:
            remote = origin.remote
        new_origin = _with_packages(sysroot, origin.rebased(f"{remote}:{ref}" if remote else ref),
                                    install, uninstall)
        repo = sysroot.repo()
        _pull(repo, new_origin, [ref], reporter)
        checksum = repo.resolve(new_origin.refspec)
        assert checksum is not None
        _deploy_new(sysroot, cur, checksum, new_origin, reporter)
        return checksum


def rollback(sysroot: Sysroot) -> tuple[Deployment, Deployment]:
    """Make the previous deployment the default again (twice: back where we were)."""
    require_root("rollback")
    with sysroot.lock():
        deployments = sysroot.deployments()
        cur = current(sysroot)
        same_os = [d for d in deployments if d.osname == cur.osname]
        if cur.booted:
            # rpm-ostree: the rollback target is the first deployment that is not booted.
            target = next((d for d in same_os if not d.booted and not d.staged), None)
            first = cur if target is not None and target.index == 0 else target
        else:
            target = same_os[1] if len(same_os) > 1 else None
            first = target
        if target is None or first is None:
            raise SysrootError("no rollback deployment: there is nothing to roll back to")
        order = [first.index] + [d.index for d in deployments if d.index != first.index]
        sysroot.reorder(order)
        new = sysroot.deployments()
        return new[0], new[1]


def cleanup(sysroot: Sysroot, *, pending: bool = False, rollback: bool = False,
            base: bool = False, metadata: bool = False) -> list[str]:
    """Remove pending/rollback deployments, layering refs, cached metadata; prune."""
    require_root("cleanup")
    removed: list[str] = []
    with sysroot.lock():
        deployments = sysroot.deployments()
        cur = current(sysroot) if deployments else None
        drop: list[int] = []
        if cur is not None:
            for d in deployments:
                if d.osname != cur.osname or d.pinned or d.index == cur.index:
                    continue
                if (pending and (d.index < cur.index or d.staged)) or (rollback and d.index > cur.index):
                    drop.append(d.index)
        if drop:
            sysroot.remove(drop)
            removed += [f"deployment {deployments[i].id}" for i in drop]
        repo = sysroot.repo()
        if base:
            from .layer import BASE_REF_PREFIX, sync_base_refs

            before = {c for r, c in repo.refs().items() if r.startswith(BASE_REF_PREFIX)}
            sync_base_refs(sysroot)
            after = {c for r, c in repo.refs().items() if r.startswith(BASE_REF_PREFIX)}
            removed += [f"base ref to {c[:12]}" for c in sorted(before - after)]
        if metadata:
            from .layer import drop_checkouts

            cache = sysroot.path / CLIENT_CACHE
            if cache.exists():
                shutil.rmtree(cache)
                removed.append("cached package metadata")
            if drop_checkouts(sysroot):
                removed.append("cached base checkout")
        sysroot.cleanup()
    return removed


@dataclass(frozen=True)
class KargsChange:
    append: tuple[str, ...] = ()
    append_if_missing: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    delete_if_present: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.append or self.append_if_missing or self.delete
                    or self.delete_if_present or self.replace)


def _key(arg: str) -> str:
    return arg.split("=", 1)[0]


def apply_kargs(kargs: Sequence[str], change: KargsChange) -> list[str]:
    """The kernel arguments after ``change`` (rpm-ostree's semantics)."""
    out = list(kargs)
    for arg in change.delete:
        if arg in out:
            out.remove(arg)
        elif "=" not in arg and sum(_key(a) == arg for a in out) == 1:
            out = [a for a in out if _key(a) != arg]
        else:
            raise UsageError(f"kargs --delete: {arg!r} is not a current kernel argument"
                             if not any(_key(a) == _key(arg) for a in out)
                             else f"kargs --delete: {arg!r} is ambiguous or has a different value")
    for arg in change.delete_if_present:
        if arg in out:
            out.remove(arg)
        elif "=" not in arg:
            out = [a for a in out if _key(a) != arg]
    for arg in change.replace:
        parts = arg.split("=")
        if len(parts) == 3:  # KEY=OLD=NEW
            old, new = f"{parts[0]}={parts[1]}", f"{parts[0]}={parts[2]}"
            if old not in out:
                raise UsageError(f"kargs --replace: {old!r} is not a current kernel argument")
            out[out.index(old)] = new
        else:
            matches = [i for i, a in enumerate(out) if _key(a) == _key(arg)]
            if len(matches) != 1:
                raise UsageError(f"kargs --replace: {_key(arg)!r} "
                                 f"{'is not set' if not matches else 'has several values'}")
            out[matches[0]] = arg
    out += change.append
    for arg in change.append_if_missing:
        if arg not in out:
            out.append(arg)
    return out


def current_kargs(sysroot: Sysroot) -> list[str]:
    return [k for k in pending_or_current(sysroot).kargs if not k.startswith("ostree=")]


def kargs(sysroot: Sysroot, change: KargsChange, reporter: Reporter | None = None) -> list[str]:
    """Deploy the current tree again with changed kernel arguments."""
    reporter = reporter or NullReporter()
    require_root("kargs")
    with sysroot.lock():
        cur = current(sysroot)
        before = current_kargs(sysroot)
        after = apply_kargs(before, change)
        if after == before:
            raise NothingChanged("No changes to the kernel arguments.")
        start = pending_or_current(sysroot)
        origin = read_origin(sysroot, start)
        _deploy_new(sysroot, cur, start.checksum, origin, reporter, kargs=after, relayer=False)
        return after


def set_pinned(sysroot: Sysroot, index: int, pinned: bool) -> Deployment:
    require_root("pin" if pinned else "unpin")
    with sysroot.lock():
        deployments = sysroot.deployments()
        if not 0 <= index < len(deployments):
            raise UsageError(f"no deployment with index {index} (there are {len(deployments)})")
        if deployments[index].pinned == pinned:
            raise NothingChanged(f"deployment {index} is already {'pinned' if pinned else 'unpinned'}")
        sysroot.set_pinned(index, pinned)
        return sysroot.deployments()[index]
