"""Package layering: Debian packages on top of an immutable base commit.

``build_layered_commit()`` checks the base out (hardlinks, read-only as the
lower layer of an overlay), runs dpkg on the overlay in a sandbox and commits
base + upper layer (DESIGN.md decision 5).  The origin records what was asked
(requests, local .debs, base removals and replacements); ``change_layering``
edits it and deploys, and every upgrade, deploy and rebase re-applies it.

Users and groups: maintainer scripts see the administrator's current
/etc/passwd, group, shadow and gshadow (copies bound into the sandbox), so new
system users never collide with local ones; the users they add are written
to the tree's /usr/etc and appended to the new deployment's /etc, where the
three-way merge would otherwise keep the administrator's files without them.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..apt import backend, dpkgdb
from ..apt.dpkg import USER_DBS, install_debs, scratch_var
from ..apt.layering import LayerPlan, LayerRequest, LocalDeb, plan_layer, read_local_deb
from ..compose import layout
from ..compose.layout import STATE_PATHS
from ..compose.metadata import build_timestamp, packages_variant
from ..compose.treefile import host_sources
from ..errors import AptOstreeError, NothingChanged
from ..mounts import overlay, unmount_if_mounted
from ..ostree import Deployment, Sysroot
from ..ostree.layer import checkout, commit_layer
from ..progress import NullReporter, Reporter
from ..run import run_detached
from .deploy import base_checksum, current, pending_or_current, read_origin, require_root
from .origin import Origin

CLIENT_CACHE = "ostree/apt-ostree/cache"
CLIENT_TMP = "ostree/apt-ostree/tmp"
LOCAL_STORE = "ostree/apt-ostree/local"
CHECKOUTS = "ostree/apt-ostree/checkouts"
CLIENT_LAYER_KEY = "apt-ostree.clientlayer"
# Package lists younger than this are used as they are when layering (rpm-ostree's
# metadata expiry); 'refresh-md' and 'install' refresh them.
METADATA_EXPIRE = 3600
BASE_REF_PREFIX = "apt-ostree/base/"


def tree_sources(tree: Path) -> list[str]:
    return host_sources(tree / "usr/etc/apt")


@dataclass(frozen=True)
class LayerResult:
    checksum: str
    plan: LayerPlan
    new_users: dict[str, list[str]] = field(default_factory=dict)  # user db -> lines


# ---- local packages ----------------------------------------------------------


def store_local_deb(sysroot: Sysroot, path: Path) -> str:
    """Keep a copy of a local .deb (re-layering needs it later); the origin entry."""
    deb = read_local_deb(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    store = sysroot.path / LOCAL_STORE
    store.mkdir(parents=True, exist_ok=True)
    target = store / f"{digest}.deb"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(target)
    return f"{deb.name}:{digest}"


def local_debs(sysroot: Sysroot, entries: Sequence[str]) -> tuple[LocalDeb, ...]:
    out = []
    for entry in entries:
        name, _, digest = entry.rpartition(":")
        path = sysroot.path / LOCAL_STORE / f"{digest}.deb"
        if not path.is_file():
            raise AptOstreeError(f"the stored copy of local package {name} ({digest[:12]}) is missing")
        out.append(read_local_deb(path))
    return tuple(out)


def request_of(sysroot: Sysroot, origin: Origin) -> LayerRequest:
    return LayerRequest(packages=origin.requested,
                        local=local_debs(sysroot, origin.requested_local),
                        remove=origin.override_remove, replace=origin.override_replace,
                        replace_local=local_debs(sysroot, origin.override_replace_local))


# ---- building --------------------------------------------------------------


def _apt_root(sysroot: Sysroot, tree: Path) -> backend.AptRoot:
    cache = (sysroot.path / CLIENT_CACHE).resolve()
    apt_root = backend.AptRoot.create(cache / "apt", tree_sources(tree), archives=cache / "debs")
    src, dest = dpkgdb.admindir(tree) / "status", apt_root.path / "var/lib/dpkg/status"
    # Same content and mtime as last time: leave it, so apt's binary cache stays valid.
    if not (dest.exists() and dest.stat().st_mtime == src.stat().st_mtime
            and dest.read_bytes() == src.read_bytes()):
        shutil.copy2(src, dest)
    return apt_root


def base_checkout(sysroot: Sysroot, base: str, reporter: Reporter) -> Path:
    """A checkout of ``base`` (hardlinks; only ever the read-only lower layer), kept for reuse.

    Checkouts of other bases are removed: one per sysroot is enough.
    """
    top = (sysroot.path / CHECKOUTS).resolve()
    top.mkdir(parents=True, exist_ok=True)
    for other in top.iterdir():
        if other.name != base:
            # Deleting 9000 hardlinks takes a second: do it after we are gone.
            trash = tmp_trash(sysroot) / other.name
            other.rename(trash)
            run_detached(["rm", "-rf", "--one-file-system", trash])
    target = top / base
    if not target.is_dir():
        partial = top / f"{base}.partial"
        with reporter.task(f"Checking out base {base[:12]}"):
            checkout(sysroot.repo(), base, partial)
        partial.rename(target)
    return target


def tmp_trash(sysroot: Sysroot) -> Path:
    return Path(tempfile.mkdtemp(prefix="trash.", dir=(sysroot.path / CLIENT_TMP).resolve()))


def drop_checkouts(sysroot: Sysroot) -> bool:
    top = sysroot.path / CHECKOUTS
    if top.exists():
        shutil.rmtree(top)
        return True
    return False


def account_entries(text: str) -> dict[str, str]:
    """The lines of a passwd/group/shadow/gshadow text, by account name."""
    return {line.split(":", 1)[0]: line for line in text.splitlines() if ":" in line}


def _user_entries(path: Path) -> dict[str, str]:
    return account_entries(path.read_text()) if path.is_file() else {}


def build_layered_commit(sysroot: Sysroot, base: str, request: LayerRequest, *,
                         reporter: Reporter, cache_only: bool = False, dry_run: bool = False,
                         download_only: bool = False, etc: Path | None = None,
                         refresh: bool = False) -> LayerResult:
    """The commit of ``base`` with ``request`` applied (``base`` itself if nothing applies).

    ``etc``: the administrator's /etc whose users and groups the scripts see.
    """
    repo = sysroot.repo()
    if request.is_empty():
        return LayerResult(base, LayerPlan())
    tmp_root = (sysroot.path / CLIENT_TMP).resolve()
    tmp_root.mkdir(parents=True, exist_ok=True)
    for stale in tmp_root.glob("layer.*"):  # left by an interrupted run; we hold the lock
        # A killed run may have left its overlay mounted: never delete through it.
        unmount_if_mounted(stale / "merged")
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="layer.", dir=tmp_root))
    try:
        lower = base_checkout(sysroot, base, reporter)
        apt_root = _apt_root(sysroot, lower)
        age = backend.lists_age(apt_root)
        if not cache_only and (refresh or age is None or age > METADATA_EXPIRE):
            with reporter.task("Updating package lists"):
                backend.update(apt_root)
        with reporter.task("Resolving packages"):
            plan = plan_layer(apt_root, request)
        if dry_run or plan.is_empty():
            return LayerResult(base, plan)
        files = {}
        if plan.install:
            with reporter.task(f"Fetching {len(plan.install)} packages"):
                files = backend.fetch(apt_root, plan.install)
        if download_only:
            return LayerResult(base, plan)
        # Local packages are bound in next to the fetched ones.
        debs = work / "debs"
        debs.mkdir()
        for path in files.values():
            (debs / path.name).hardlink_to(path)
        for deb in plan.local:
            shutil.copyfile(deb.path, debs / f"local-{deb.name}.deb")
        upper = work / "upper"
        with overlay(lower, upper, work / "work", work / "merged") as merged, \
                reporter.task(f"Installing {len(plan.install) + len(plan.local)} packages"
                              + (f", removing {len(plan.remove)}" if plan.remove else "")):
            admin_users = _show_admin_users(merged, etc)
            varroot = work / "varroot"
            scratch_var(varroot / "var", STATE_PATHS)
            install_debs(merged, debs, sorted(p.name for p in debs.iterdir()), varroot / "var", work,
                         remove=plan.remove)
            _check_outside_tree(merged, [p.name for p in plan.install] + [d.name for d in plan.local])
            _var_to_tmpfiles(lower, merged, varroot)
            new_users = _carry_new_users(lower, merged, admin_users)
            packages = dpkgdb.installed_packages(dpkgdb.admindir(merged))
        _drop_sandbox_leftovers(lower, upper)
        layout.fix_pyc_timestamps(upper)  # py3compile of layered packages
        base_commit = repo.read_commit(base)
        meta = {
            "version": base_commit.version or "",
            "apt-ostree.packages": packages_variant(packages),
            CLIENT_LAYER_KEY: True,
            "apt-ostree.layered-packages": sorted({p.name for p in plan.install} |
                                                  {d.name for d in plan.local}),
            "apt-ostree.removed-base-packages": sorted(plan.remove),
        }
        with reporter.task("Committing the layered tree"):
            checksum = commit_layer(repo, base, upper, subject=f"apt-ostree layer on {base[:12]}",
                                    metadata=meta, timestamp=build_timestamp())
        return LayerResult(checksum, plan, new_users)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _show_admin_users(merged: Path, etc: Path | None) -> dict[str, dict[str, str]]:
    """Let the scripts see the administrator's users: their files over the tree's.

    (Files, not bind mounts: the shadow tools replace them by rename.)
    """
    seen: dict[str, dict[str, str]] = {}
    for name in USER_DBS:
        target = merged / "usr/etc" / name
        src = etc / name if etc is not None else None
        if src is not None and src.is_file() and target.is_file():
            target.write_text(src.read_text())
        seen[name] = _user_entries(target)
    return seen


def _carry_new_users(lower: Path, merged: Path,
                     seen: dict[str, dict[str, str]]) -> dict[str, list[str]]:
    """The tree's own user files again, plus the users/groups the scripts added."""
    added: dict[str, list[str]] = {}
    for name in USER_DBS:
        target, base = merged / "usr/etc" / name, lower / "usr/etc" / name
        if not target.is_file():
            continue
        new = [line for key, line in _user_entries(target).items() if key not in seen[name]]
        if new:
            added[name] = new
        if base.is_file():
            text = base.read_text()
            if text and not text.endswith("\n"):
                text += "\n"
            target.write_text(text + "".join(f"{line}\n" for line in new))
    return added


TREE_DIRS = ("/usr", "/etc", "/var", "/bin", "/sbin", "/lib")
LAYERED_TMPFILES = "usr/lib/tmpfiles.d/apt-ostree-layered.conf"


def _check_outside_tree(merged: Path, names: Sequence[str]) -> None:
    """Files a package put where an OSTree tree has nothing (e.g. /opt) would be lost: refuse."""
    info = dpkgdb.admindir(merged) / "info"
    for name in names:
        for lst in [info / f"{name}.list", *info.glob(f"{name}:*.list")]:
            if not lst.is_file():
                continue
            outside = [p for p in lst.read_text().splitlines()
                       if p not in ("/.", "/") and not p.startswith(TREE_DIRS)]
            if outside:
                raise AptOstreeError(f"package {name} installs files outside /usr, /etc and /var: "
                                     f"{', '.join(outside[:3])}",
                                     hint="such packages cannot be layered on an OSTree system")


def _var_to_tmpfiles(lower: Path, merged: Path, varroot: Path) -> None:
    """What the scripts created in /var becomes tmpfiles.d entries of the layered tree."""
    (varroot / "usr").symlink_to(merged / "usr")
    known: set[str] = set()
    for conf in (lower / "usr/lib/tmpfiles.d").glob("*.conf"):
        for line in conf.read_text().splitlines():
            fields = line.split()
            if len(fields) > 1 and not line.startswith("#"):
                known.add(fields[1])
    tmpfiles = layout.Tmpfiles()
    layout.convert_var(varroot, tmpfiles)
    lines = {p: line for p, line in tmpfiles.lines.items() if p not in known}
    if lines:
        conf = merged / LAYERED_TMPFILES
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("# Generated by apt-ostree: /var content of layered packages.\n"
                        + "".join(f"{lines[p]}\n" for p in sorted(lines)))


def _drop_sandbox_leftovers(lower: Path, upper: Path) -> None:
    """Mount points the sandbox needed and state that is not part of the tree."""
    for rel in ("usr/sbin/policy-rc.d",):
        if (upper / rel).exists() and not (lower / rel).exists():
            (upper / rel).unlink()
    # dpkg's backups of its own files: the base keeps its copies, the layer needs none.
    for backup in (upper / dpkgdb.OSTREE_ADMINDIR).glob("*-old"):
        if backup.is_file() and not backup.is_symlink():
            backup.unlink()
    for name in ("var", "etc", "run", "tmp"):
        if (upper / name).exists():
            shutil.rmtree(upper / name)


def append_users(deployment_etc: Path, new_users: dict[str, list[str]]) -> None:
    """Give a deployment's /etc the users and groups its layered packages created."""
    for name, lines in new_users.items():
        target = deployment_etc / name
        present = _user_entries(target)
        missing = [line for line in lines if line.split(":", 1)[0] not in present]
        if missing:
            with open(target, "a") as f:
                f.write("".join(f"{line}\n" for line in missing))


# ---- base refs ---------------------------------------------------------------


def sync_base_refs(sysroot: Sysroot, extra: Sequence[str] = ()) -> None:
    """Keep the base commit of every layered deployment (and ``extra``) alive with a ref.

    Pruning keeps deployed commits but not their parents; re-layering and
    ``db diff`` need the bases.
    """
    repo = sysroot.repo()
    bases = list(dict.fromkeys(
        [b for d in sysroot.deployments() if (b := base_checksum(repo, d.checksum)) != d.checksum]
        + list(extra)))
    for ref in repo.refs():
        if ref.startswith(BASE_REF_PREFIX):
            repo.set_ref(None, ref, None)
    for i, checksum in enumerate(bases):
        repo.set_ref(None, f"{BASE_REF_PREFIX}{i}", checksum)


def deploy_layered(sysroot: Sysroot, cur: Deployment, base: str, origin: Origin, *,
                   reporter: Reporter, cache_only: bool = False, refresh: bool = False,
                   kargs: Sequence[str] | None = None) -> LayerResult:
    """Build ``base`` + the origin's layering and deploy it as the new default.

    ``refresh``: update the package lists even if they are younger than METADATA_EXPIRE.
    """
    result = build_layered_commit(sysroot, base, request_of(sysroot, origin), reporter=reporter,
                                  cache_only=cache_only, refresh=refresh, etc=cur.path / "etc")
    sync_base_refs(sysroot, extra=[base])
    with reporter.task(f"Deploying {result.checksum[:12]}"):
        sysroot.deploy(cur.osname, result.checksum, origin.to_keyfile(), merge_index=cur.index,
                       kargs=kargs)
    sync_base_refs(sysroot)
    if result.new_users:
        append_users(sysroot.deployments()[0].path / "etc", result.new_users)
        if cur.booted:
            # A staged deployment gets its /etc at shutdown, merged from the booted
            # one's: the users must be there too (they exist only in the new tree).
            append_users(cur.path / "etc", result.new_users)
    return result


# ---- transactions ------------------------------------------------------------


@dataclass(frozen=True)
class LayeringChange:
    install: tuple[str, ...] = ()            # names or paths of .debs
    uninstall: tuple[str, ...] = ()
    uninstall_all: bool = False
    remove: tuple[str, ...] = ()             # override remove
    replace: tuple[str, ...] = ()            # override replace: PKG=VERSION or paths of .debs
    reset_overrides: tuple[str, ...] = ()
    reset_all_overrides: bool = False
    reset_all: bool = False


def _is_path(arg: str) -> bool:
    return arg.endswith(".deb") and ("/" in arg or Path(arg).is_file())


def apply_change(sysroot: Sysroot, origin: Origin, change: LayeringChange, *,
                 idempotent: bool = False, allow_inactive: bool = False,
                 base_names: set[str] | None = None) -> Origin:
    """The origin after ``change``; raises for requests that make no sense."""
    requested, local = list(origin.requested), list(origin.requested_local)
    remove, rep, rep_local = (list(origin.override_remove), list(origin.override_replace),
                              list(origin.override_replace_local))
    if change.reset_all:
        return origin.without_layering()
    for arg in change.install:
        if _is_path(arg):
            if not Path(arg).is_file():
                raise AptOstreeError(f"{arg}: no such file")
            entry = store_local_deb(sysroot, Path(arg))
            if entry in local:
                if idempotent:
                    continue
                raise AptOstreeError(f"local package {arg} is already requested")
            local = [e for e in local if e.rpartition(":")[0] != entry.rpartition(":")[0]] + [entry]
            continue
        if arg in requested:
            if idempotent:
                continue
            raise AptOstreeError(f"package {arg} is already requested",
                                 hint="use --idempotent to ignore this")
        if base_names is not None and arg in base_names and not allow_inactive:
            raise AptOstreeError(f"package {arg} is already provided by the base",
                                 hint="use --allow-inactive to request it anyway")
        requested.append(arg)
    local_names = {e.rpartition(":")[0]: e for e in local}
    if change.uninstall_all:
        requested, local = [], []
    for name in change.uninstall:
        if name in requested:
            requested.remove(name)
        elif name in local_names:
            local.remove(local_names[name])
        else:
            raise AptOstreeError(f"package {name} is not requested: nothing to uninstall")
    for name in change.remove:
        if name in remove:
            raise AptOstreeError(f"base package {name} is already removed")
        if base_names is not None and name not in base_names:
            raise AptOstreeError(f"{name} is not a package of the base")
        remove.append(name)
    for arg in change.replace:
        if _is_path(arg):
            if not Path(arg).is_file():
                raise AptOstreeError(f"{arg}: no such file")
            entry = store_local_deb(sysroot, Path(arg))
            rep_local = [e for e in rep_local if e.rpartition(":")[0] != entry.rpartition(":")[0]] + [entry]
        elif "=" in arg:
            name = arg.partition("=")[0]
            rep = [r for r in rep if r.partition("=")[0] != name] + [arg]
        else:
            raise AptOstreeError(f"override replace: expected ./FILE.deb or PKG=VERSION, got {arg!r}")
    if change.reset_all_overrides:
        remove, rep, rep_local = [], [], []
    for name in change.reset_overrides:
        found = [x for x in remove if x == name] + [x for x in rep if x.partition("=")[0] == name] \
            + [x for x in rep_local if x.rpartition(":")[0] == name]
        if not found:
            raise AptOstreeError(f"no override for package {name}")
        remove = [x for x in remove if x != name]
        rep = [x for x in rep if x.partition("=")[0] != name]
        rep_local = [x for x in rep_local if x.rpartition(":")[0] != name]
    return replace(origin, requested=tuple(requested), requested_local=tuple(local),
                   override_remove=tuple(remove), override_replace=tuple(rep),
                   override_replace_local=tuple(rep_local))


def change_layering(sysroot: Sysroot, change: LayeringChange, *, idempotent: bool = False,
                    allow_inactive: bool = False, cache_only: bool = False, dry_run: bool = False,
                    download_only: bool = False,
                    reporter: Reporter | None = None) -> LayerResult:
    """install/uninstall/override/reset: a new deployment of the base with the new requests."""
    reporter = reporter or NullReporter()
    if not dry_run:
        require_root("package changes")
    with sysroot.lock():
        cur = current(sysroot)
        start = pending_or_current(sysroot)
        origin = read_origin(sysroot, start)
        repo = sysroot.repo()
        base = base_checksum(repo, start.checksum)
        from ..compose.metadata import packages_from_metadata

        base_names = {p.name for p in packages_from_metadata(repo.read_commit(base).metadata)} or None
        new_origin = apply_change(sysroot, origin, change, idempotent=idempotent,
                                  allow_inactive=allow_inactive, base_names=base_names)
        if new_origin == origin:
            raise NothingChanged("No change.")
        if dry_run or download_only:
            return build_layered_commit(sysroot, base, request_of(sysroot, new_origin),
                                        reporter=reporter, cache_only=cache_only, dry_run=dry_run,
                                        download_only=download_only, etc=cur.path / "etc",
                                        refresh=True)
        return deploy_layered(sysroot, cur, base, new_origin, reporter=reporter,
                              cache_only=cache_only, refresh=True)


def refresh_metadata(sysroot: Sysroot, reporter: Reporter | None = None) -> None:
    """Update the package lists of the current deployment's apt sources."""
    reporter = reporter or NullReporter()
    require_root("refresh-md")
    cur = current(sysroot)
    with sysroot.lock():
        apt_root = _apt_root(sysroot, cur.path)
        with reporter.task("Updating package lists"):
            backend.update(apt_root)


def search(sysroot: Sysroot, terms: Sequence[str]) -> list[tuple[str, str, str]]:
    from ..apt.layering import search as apt_search

    cur = current(sysroot)
    apt_root = _apt_root(sysroot, cur.path)
    return apt_search(apt_root, terms)
