"""Lockfiles: the exact package versions of a compose, as JSON.

Format: ``{"packages": {"NAME": {"version": "V", "architecture": "A"}}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ..errors import LockfileError
from ..packages import Package


def read_lockfile(path: Path) -> tuple[Package, ...]:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise LockfileError(f"{path}: cannot read: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise LockfileError(f"{path}: not UTF-8 text (byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise LockfileError(f"{path}: invalid JSON: {e.msg} (line {e.lineno})") from e
    packages = data.get("packages") if isinstance(data, dict) else None
    if not isinstance(packages, dict):
        raise LockfileError(f"{path}: expected an object with a 'packages' mapping")
    out = []
    for name, entry in sorted(packages.items()):
        if not (isinstance(entry, dict) and isinstance(entry.get("version"), str)
                and isinstance(entry.get("architecture"), str)):
            raise LockfileError(f"{path}: packages.{name}: expected version and architecture")
        out.append(Package(name, entry["version"], entry["architecture"]))
    return tuple(out)


def lockfile_json(packages: Iterable[Package]) -> str:
    data = {"packages": {p.name: {"version": p.version, "architecture": p.architecture}
                         for p in sorted(packages)}}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def write_lockfile(path: Path, packages: Iterable[Package]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(lockfile_json(packages))
    tmp.replace(path)
