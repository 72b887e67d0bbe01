"""Commit metadata of composed trees: input hash, package list, versions."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gi.repository import GLib

from ..packages import Package

if TYPE_CHECKING:
    from .treefile import Treefile

PACKAGES_KEY = "apt-ostree.packages"
INPUTHASH_KEY = "apt-ostree.inputhash"
TREEFILE_KEY = "apt-ostree.treefile"


def build_timestamp() -> int:
    """SOURCE_DATE_EPOCH when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return int(epoch) if epoch and epoch.isdigit() else int(time.time())


def input_hash(treefile: Treefile, packages: Iterable[Package]) -> str:
    """Hash of everything a compose depends on: the expanded treefile and the versions."""
    data = {"treefile": treefile.hash_input(),
            "packages": [p.nevra for p in sorted(packages)]}
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def next_version(previous: str | None, timestamp: int) -> str:
    """rpm-ostree style automatic version: YYYYMMDD.N, N increasing within a day."""
    prefix = datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y%m%d")
    if previous and previous.startswith(prefix + "."):
        tail = previous[len(prefix) + 1:]
        if tail.isdigit():
            return f"{prefix}.{int(tail) + 1}"
    return f"{prefix}.0"


def packages_variant(packages: Iterable[Package]) -> GLib.Variant:
    return GLib.Variant("a(sss)", [p.as_tuple() for p in sorted(packages)])


def packages_from_metadata(metadata: Mapping[str, Any]) -> list[Package]:
    raw = metadata.get(PACKAGES_KEY) or []
    return sorted(Package(*entry) for entry in raw)


def commit_metadata(treefile: Treefile, packages: Iterable[Package], *, version: str,
                    inputhash: str, extra: Mapping[str, str]) -> dict[str, Any]:
    pkgs = list(packages)
    meta: dict[str, Any] = dict(treefile.metadata)
    meta.update(extra)
    meta["version"] = version
    meta[PACKAGES_KEY] = packages_variant(pkgs)
    meta[INPUTHASH_KEY] = inputhash
    meta[TREEFILE_KEY] = json.dumps(treefile.hash_input(), sort_keys=True)
    return meta
