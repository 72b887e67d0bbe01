"""Compose: treefile -> packages -> root filesystem -> OSTree layout -> commit.

``compose_tree()`` reads as the list of its steps; the granular commands
(``compose install``, ``postprocess``, ``commit``) call the same steps.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..apt import backend, dpkgdb
from ..errors import AptOstreeError, LayoutError, NothingChanged
from ..ostree import Repo
from ..packages import Package, ResolveRequest
from ..progress import NullReporter, Reporter
from . import DEFAULT_CACHEDIR, layout, lockfile, metadata, treeops
from .rootfs import build_rootfs, remove_tree
from .treefile import Treefile

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ComposeOptions:
    repo: Path | None = None
    cachedir: Path | None = None
    workdir: Path | None = None
    lockfile: Path | None = None
    write_lockfile_to: Path | None = None
    write_commitid_to: Path | None = None
    dry_run: bool = False
    force_nocache: bool = False
    cache_only: bool = False
    extra_metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ComposeResult:
    packages: tuple[Package, ...]
    inputhash: str
    commit: str | None = None
    version: str | None = None
    changed: bool = True


@contextmanager
def cache_lock(cachedir: Path | None, reporter: Reporter) -> Iterator[Callable[[], None]]:
    """Hold the compose cache for one compose; yields a function that releases it early.

    Composes sharing a cache would otherwise rewrite each other's apt sources
    and package lists between update, resolve and fetch.
    """
    base = cachedir or DEFAULT_CACHEDIR
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with reporter.task(f"Waiting for another compose to release {base}"):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield lambda: fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def apt_root_for(treefile: Treefile, cachedir: Path | None) -> backend.AptRoot:
    base = cachedir or DEFAULT_CACHEDIR
    return backend.AptRoot.create(base / "apt", treefile.sources, archives=base / "debs")


def resolve_packages(treefile: Treefile, apt_root: backend.AptRoot,
                     locked: Sequence[Package] = ()) -> list[Package]:
    request = ResolveRequest(
        packages=treefile.packages,
        essential=True,
        priorities=treefile.variant.priorities(),
        with_apt=treefile.variant.wants_apt(),
        exclude=treefile.exclude_packages,
        locked=tuple(locked),
    )
    return backend.resolve(apt_root, request)


@contextmanager
def work_directory(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="apt-ostree-compose.", dir=workdir or "/var/tmp"))
    try:
        yield path
    finally:
        try:
            remove_tree(path)
        except AptOstreeError as e:  # keep the error that brought us here
            log.warning("%s", e)


def update_and_resolve(treefile: Treefile, opts: ComposeOptions, locked: Sequence[Package],
                       reporter: Reporter) -> tuple[backend.AptRoot, list[Package]]:
    """The first steps of every compose: refresh the lists (unless -C), resolve."""
    apt_root = apt_root_for(treefile, opts.cachedir)
    if not opts.cache_only:
        with reporter.task("Updating package lists"):
            backend.update(apt_root)
    with reporter.task("Resolving packages"):
        return apt_root, resolve_packages(treefile, apt_root, locked)


def install(treefile: Treefile, dest: Path, opts: ComposeOptions,
            reporter: Reporter) -> list[Package]:
    """Resolve, fetch and install the treefile's packages into ``dest``."""
    locked = lockfile.read_lockfile(opts.lockfile) if opts.lockfile else ()
    with cache_lock(opts.cachedir, reporter):
        apt_root, packages = update_and_resolve(treefile, opts, locked, reporter)
        with reporter.task(f"Fetching {len(packages)} packages"):
            files = backend.fetch(apt_root, packages)
        with reporter.task("Building the root filesystem"):
            build_rootfs(dest, treefile, apt_root, packages, files)
    return packages


def postprocess(rootfs: Path, treefile: Treefile | None, reporter: Reporter) -> None:
    # Before the treefile's changes: they must not land in a missing or adapted tree.
    layout.check_not_adapted(rootfs)
    if treefile is not None:
        with reporter.task("Applying the treefile"):
            treeops.apply_treefile(rootfs, treefile, reporter)
    with reporter.task("Adapting the tree to the OSTree layout"):
        layout.adapt_to_ostree(rootfs)


def check_adapted(rootfs: Path) -> None:
    """Refuse to commit what is not an OSTree-ready tree (``compose postprocess`` makes one)."""
    if not rootfs.is_dir():
        raise LayoutError(f"{rootfs}: no such directory")
    if (rootfs / "etc").exists() or not (rootfs / "usr/etc").is_dir():
        raise LayoutError(f"{rootfs}: not adapted to the OSTree layout (it needs /usr/etc and no /etc)",
                          hint="run 'apt-ostree compose postprocess ROOTFS TREEFILE' first")
    try:
        dpkgdb.admindir(rootfs)
    except FileNotFoundError:
        raise LayoutError(f"{rootfs}: no dpkg database in {dpkgdb.OSTREE_ADMINDIR}") from None


def write_output(path: Path, text: str) -> None:
    """Write a file the user asked for (commit id), as an error the user can read."""
    try:
        path.write_text(text)
    except OSError as e:
        raise AptOstreeError(f"{path}: cannot write: {e.strerror}") from e


def commit(treefile: Treefile, rootfs: Path, repo: Repo, opts: ComposeOptions,
           reporter: Reporter, packages: Sequence[Package] | None = None,
           inputhash: str | None = None) -> ComposeResult:
    """Commit an adapted ``rootfs`` on the treefile's ref."""
    check_adapted(rootfs)
    if packages is None:
        packages = dpkgdb.installed_packages(dpkgdb.admindir(rootfs))
    inputhash = inputhash or metadata.input_hash(treefile, packages)
    parent = repo.resolve(treefile.ref, allow_missing=True)
    previous = repo.read_commit(parent).version if parent else None
    timestamp = metadata.build_timestamp()
    version = treefile.version or metadata.next_version(previous, timestamp)
    meta = metadata.commit_metadata(treefile, packages, version=version, inputhash=inputhash,
                                    extra=opts.extra_metadata)
    with reporter.task(f"Committing {treefile.ref} version {version}"):
        checksum = repo.commit_directory(rootfs, ref=treefile.ref, subject=f"{treefile.ref} {version}",
                                         metadata=meta, timestamp=timestamp, parent=parent)
    if opts.write_commitid_to:
        write_output(opts.write_commitid_to, checksum + "\n")
    return ComposeResult(tuple(packages), inputhash, checksum, version)


def compose_tree(treefile: Treefile, opts: ComposeOptions,
                 reporter: Reporter | None = None) -> ComposeResult:
    """The whole compose; raises NothingChanged when the inputs are unchanged."""
    reporter = reporter or NullReporter()
    assert opts.repo is not None or opts.dry_run
    locked = lockfile.read_lockfile(opts.lockfile) if opts.lockfile else ()
    with ExitStack() as stack:
        release_cache = stack.enter_context(cache_lock(opts.cachedir, reporter))
        apt_root, packages = update_and_resolve(treefile, opts, locked, reporter)
        inputhash = metadata.input_hash(treefile, packages)
        if opts.write_lockfile_to:
            try:
                lockfile.write_lockfile(opts.write_lockfile_to, packages)
            except OSError as e:
                raise AptOstreeError(f"{opts.write_lockfile_to}: cannot write: {e.strerror}") from e
        if opts.dry_run:
            return ComposeResult(tuple(packages), inputhash, changed=False)

        repo = Repo.open(opts.repo, create=True)  # type: ignore[arg-type]
        current = repo.resolve(treefile.ref, allow_missing=True)
        if current and not opts.force_nocache:
            previous = repo.read_commit(current)
            if previous.metadata.get(metadata.INPUTHASH_KEY) == inputhash:
                if opts.write_commitid_to:
                    write_output(opts.write_commitid_to, current + "\n")
                raise NothingChanged(f"No changes: {treefile.ref} is {current} "
                                     f"(version {previous.version}), built from the same inputs")

        with reporter.task(f"Fetching {len(packages)} packages"):
            files = backend.fetch(apt_root, packages)
        work = stack.enter_context(work_directory(opts.workdir))
        rootfs = work / "rootfs"
        with reporter.task(f"Building the root filesystem ({len(packages)} packages)"):
            build_rootfs(rootfs, treefile, apt_root, packages, files)
        # The cache is not read past this point: let the next compose start.
        release_cache()
        postprocess(rootfs, treefile, reporter)
        return commit(treefile, rootfs, repo, opts, reporter, packages, inputhash)
