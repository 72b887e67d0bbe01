"""Deployment status: the same data for ``status``, ``status --json`` and the daemon."""

from __future__ import annotations

from typing import Any

from ..compose.metadata import packages_from_metadata
from ..errors import RepoError
from ..ostree import Deployment, Repo, Sysroot
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
    layered = sorted({p.name for p in packages_from_metadata(meta)}
                     - {p.name for p in packages_from_metadata(base_meta)}) if base != d.checksum else []
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
        "kernel-arguments": [k for k in d.kargs if not k.startswith("ostree=")],
        "requested-packages": list(origin.requested),
        "requested-local-packages": list(origin.requested_local),
        "packages": layered,
        "requested-base-removals": list(origin.override_remove),
        "base-removals": list(origin.override_remove),
        "requested-base-local-replacements": list(origin.override_replace_local),
        "base-local-replacements": list(origin.override_replace_local),
    }


def status(sysroot: Sysroot) -> dict[str, Any]:
    repo = sysroot.repo()
    deployments = sysroot.deployments()
    return {
        "deployments": [deployment_json(sysroot, repo, d, i == 0) for i, d in enumerate(deployments)],
        "booted": next((d.id for d in deployments if d.booted), None),
        "transaction": None,
    }
