"""Deployment status: the same data for ``status``, ``status --json`` and the daemon."""

from __future__ import annotations

from typing import Any

from .. import statuscache
from ..compose.metadata import packages_from_metadata
from ..errors import RepoError
from ..ostree import Deployment, Repo, Sysroot
from .live import read_state as read_live_state
from .origin import Origin

CLIENT_LAYER_KEY = "apt-ostree.clientlayer"


def deployment_json(sysroot: Sysroot, repo: Repo, d: Deployment, default: bool) -> dict[str, Any]:
    try:
        commit = repo.read_commit(d.checksum)
        meta, timestamp = commit.metadata, commit.timestamp
        base = commit.parent if meta.get(CLIENT_LAYER_KEY) and commit.parent else d.checksum
    except RepoError:
        meta, timestamp, base = {}, 0, d.checksum
    try:
        origin = Origin.from_keyfile(sysroot.origin(d.index))
    except Exception:  # an unreadable origin is shown, not fatal for status
        origin = Origin(refspec="", unreadable=True)
    base_meta = meta
    if base != d.checksum:
        try:
            base_meta = repo.read_commit(base).metadata
        except RepoError:
            base_meta = {}
    live = read_live_state(d) if d.booted else None
    base_pkgs = {p.name: p for p in packages_from_metadata(base_meta)}
    layered_commit = base != d.checksum
    own = {p.name: p for p in packages_from_metadata(meta)} if layered_commit else base_pkgs
    inactive = [r for r in origin.requested if r in base_pkgs]
    local_names = [e.rpartition(":")[0] for e in origin.requested_local]
    replaced = sorted(f"{n} {base_pkgs[n].version} -> {own[n].version}" for n in own
                      if n in base_pkgs and own[n].version != base_pkgs[n].version)
    removed = sorted(n for n in base_pkgs if layered_commit and n not in own)
    return {
        "id": d.id,
        "osname": d.osname,
        "serial": d.serial,
        "checksum": d.checksum,
        "base-checksum": base,
        "version": meta.get("version"),
        "base-version": base_meta.get("version"),
        "timestamp": timestamp,
        "origin": origin.refspec,
        "override-commit": origin.override_commit,
        "booted": d.booted,
        "default": default,
        "staged": d.staged,
        "pinned": d.pinned,
        "unlocked": d.unlocked,
        "live-replaced": live.commit if live else None,
        "live-inprogress": live.inprogress if live else None,
        "kernel-arguments": [k for k in d.kargs if not k.startswith("ostree=")],
        "requested-packages": list(origin.requested),
        "inactive-requests": inactive,
        "requested-local-packages": list(origin.requested_local),
        "packages": [r for r in origin.requested if r not in base_pkgs],
        "local-packages": local_names,
        "requested-base-removals": list(origin.override_remove),
        "base-removals": removed,
        "requested-base-replacements": list(origin.override_replace),
        "requested-base-local-replacements": list(origin.override_replace_local),
        "base-local-replacements": replaced,
    }


def status(sysroot: Sysroot) -> dict[str, Any]:
    """The deployments as ``status --json`` shows them; refreshes the status cache."""
    key = statuscache.cache_key(sysroot.path)
    repo = sysroot.repo()
    deployments = sysroot.deployments()
    data = {
        "deployments": [deployment_json(sysroot, repo, d, i == 0) for i, d in enumerate(deployments)],
        "booted": next((d.id for d in deployments if d.booted), None),
        "transaction": None,
    }
    statuscache.store(sysroot.path, data, statuscache.status_json(data), key)
    return data
