"""Package layering: Debian packages on top of an immutable base commit.

``build_layered_commit()`` checks the base out (hardlinks, read-only as the
lower layer of an overlay), runs dpkg on the overlay in a sandbox and commits
base + upper layer.  ``install``/``uninstall`` change the origin's requests
and deploy the result; every upgrade re-applies the requests.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..apt import backend, dpkgdb
from ..apt.dpkg import install_debs
from ..apt.layering import LayerPlan, plan_layer
from ..compose.layout import STATE_PATHS
from ..compose.metadata import build_timestamp, packages_variant
from ..compose.treefile import host_sources
from ..errors import AptOstreeError, NothingChanged
from ..mounts import overlay
from ..ostree import Sysroot
from ..ostree.layer import checkout, commit_layer
from ..progress import NullReporter, Reporter
from .deploy import base_checksum, current, read_origin, require_root

CLIENT_CACHE = "ostree/apt-ostree/cache"
CLIENT_TMP = "ostree/apt-ostree/tmp"
CLIENT_LAYER_KEY = "apt-ostree.clientlayer"


def tree_sources(tree: Path) -> list[str]:
    return host_sources(tree / "usr/etc/apt")


@dataclass(frozen=True)
class LayerResult:
    checksum: str
    plan: LayerPlan


def build_layered_commit(sysroot: Sysroot, base: str, requests: Sequence[str], *,
                         reporter: Reporter, cache_only: bool = False) -> LayerResult:
    """The commit of ``base`` with ``requests`` installed (``base`` itself if none apply)."""
    repo = sysroot.repo()
    if not requests:
        return LayerResult(base, LayerPlan((), ()))
    tmp_root = (sysroot.path / CLIENT_TMP).resolve()
    tmp_root.mkdir(parents=True, exist_ok=True)
    for stale in tmp_root.glob("layer.*"):  # left by an interrupted run; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="layer.", dir=tmp_root))
    try:
        lower = work / "lower"
        with reporter.task(f"Checking out base {base[:12]}"):
            checkout(repo, base, lower)
        cache = (sysroot.path / CLIENT_CACHE).resolve()
        apt_root = backend.AptRoot.create(cache / "apt", tree_sources(lower), archives=cache / "debs")
        shutil.copyfile(dpkgdb.admindir(lower) / "status", apt_root.path / "var/lib/dpkg/status")
        if not cache_only:
            with reporter.task("Updating package lists"):
                backend.update(apt_root)
        with reporter.task("Resolving packages"):
            plan = plan_layer(apt_root, requests)
        if not plan.install:
            return LayerResult(base, plan)
        with reporter.task(f"Fetching {len(plan.install)} packages"):
            files = backend.fetch(apt_root, plan.install)
        upper = work / "upper"
        with overlay(lower, upper, work / "work", work / "merged") as merged, \
                reporter.task(f"Installing {len(plan.install)} packages"):
            install_debs(merged, apt_root.archives, [f.name for f in files.values()],
                         STATE_PATHS, work)
            packages = dpkgdb.installed_packages(dpkgdb.admindir(merged))
        _drop_sandbox_leftovers(lower, upper)
        base_commit = repo.read_commit(base)
        meta = {
            "version": base_commit.version or "",
            "apt-ostree.packages": packages_variant(packages),
            CLIENT_LAYER_KEY: True,
            "apt-ostree.layered-packages": sorted(p.name for p in plan.install),
        }
        with reporter.task("Committing the layered tree"):
            checksum = commit_layer(repo, base, upper, subject=f"apt-ostree layer on {base[:12]}",
                                    metadata=meta, timestamp=build_timestamp())
        return LayerResult(checksum, plan)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _drop_sandbox_leftovers(lower: Path, upper: Path) -> None:
    """Mount points the sandbox needed and state that is not part of the tree."""
    policy = upper / "usr/sbin/policy-rc.d"
    if policy.exists() and not (lower / "usr/sbin/policy-rc.d").exists():
        policy.unlink()
    for name in ("var", "etc", "run", "tmp"):
        if (upper / name).exists():
            shutil.rmtree(upper / name)


def change_packages(sysroot: Sysroot, *, install: Sequence[str] = (), uninstall: Sequence[str] = (),
                    uninstall_all: bool = False, idempotent: bool = False,
                    reporter: Reporter | None = None, cache_only: bool = False) -> LayerResult:
    reporter = reporter or NullReporter()
    require_root("install" if install else "uninstall")
    with sysroot.lock():
        cur = current(sysroot)
        origin = read_origin(sysroot, cur)
        requested = list(origin.requested)
        for name in install:
            if name in requested:
                if idempotent:
                    continue
                raise AptOstreeError(f"package {name} is already requested",
                                     hint="use --idempotent to ignore this")
            requested.append(name)
        unknown = [n for n in uninstall if n not in requested]
        if unknown:
            raise AptOstreeError(f"package{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(unknown)} {'are' if len(unknown) > 1 else 'is'} not requested")
        requested = [] if uninstall_all else [n for n in requested if n not in uninstall]
        if requested == list(origin.requested):
            raise NothingChanged("No change.")
        repo = sysroot.repo()
        base = base_checksum(repo, cur.checksum)
        result = build_layered_commit(sysroot, base, requested, reporter=reporter,
                                      cache_only=cache_only)
        new_origin = origin.with_requests(tuple(requested))
        sync_base_refs(sysroot, extra=[base])
        with reporter.task(f"Deploying {result.checksum[:12]}"):
            sysroot.deploy(cur.osname, result.checksum, new_origin.to_keyfile(),
                           merge_index=cur.index)
        sync_base_refs(sysroot)
        return result


BASE_REF_PREFIX = "apt-ostree/base/"


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
