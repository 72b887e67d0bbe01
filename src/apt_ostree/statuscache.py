"""A cache of ``status``, valid while the sysroot's deployments are unchanged.

Reading a status through libostree costs a Python process the import of
PyGObject and libostree (a quarter of a second); the deployments change only
when libostree rewrites the deployment directories, origins or the boot
loader configuration.  The cache is keyed on exactly those, so a ``status``
with nothing changed needs only this module: keep it to os and marshal
(json would import re; the JSON text is stored ready-made).
"""

from __future__ import annotations

import marshal
import os

CACHE = "ostree/apt-ostree/status.cache"
VERSION = 2


def _stamp(path: str) -> list[object]:
    try:
        st = os.lstat(path)
    except OSError:
        return [path, None]
    target = os.readlink(path) if os.path.islink(path) else None
    return [path, st.st_mtime_ns, st.st_ino, target]


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cache_key(sysroot: str | os.PathLike[str]) -> list[object]:
    """What the deployments, their origins, boot entries and booted state depend on."""
    root = os.fspath(sysroot)
    parts: list[object] = [VERSION, os.path.realpath(root)]
    parts += [_stamp(os.path.join(root, p)) for p in ("boot/loader", "ostree/boot.0", "ostree/boot.1")]
    parts += [_stamp("/run/ostree/staged-deployment"), os.path.exists("/run/ostree-booted"),
              _read("/proc/cmdline")]
    # Booted: unlocked /usr and live updates (state files in /run).
    for state_dir in ("/run/ostree/deployment-state", "/run/apt-ostree/live"):
        try:
            names = sorted(os.listdir(state_dir))
        except OSError:
            names = []
        parts.append(_stamp(state_dir))
        parts += [_stamp(os.path.join(state_dir, n)) for n in names]
    deploy = os.path.join(root, "ostree/deploy")
    try:
        for name in sorted(os.listdir(deploy)):
            d = os.path.join(deploy, name, "deploy")
            parts.append(_stamp(d))
            # Origins can be edited in place (the directory's mtime stays).
            parts += [_stamp(os.path.join(d, e)) for e in sorted(os.listdir(d)) if e.endswith(".origin")]
    except OSError:
        parts.append(None)
    return parts


def status_json(data: dict, *, booted_only: bool = False) -> str:  # type: ignore[type-arg]
    """The text of ``status --json``."""
    import json

    if booted_only:
        data = {**data, "deployments": [d for d in data["deployments"] if d["booted"]]}
    return json.dumps(data, indent=2) + "\n"


def load(sysroot: str | os.PathLike[str]) -> tuple[dict, str] | None:  # type: ignore[type-arg]
    """The cached status and its JSON text, or None when missing or stale."""
    try:
        with open(os.path.join(os.fspath(sysroot), CACHE), "rb") as f:
            cached = marshal.load(f)
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(cached, dict) or cached.get("key") != cache_key(sysroot):
        return None
    data, text = cached.get("status"), cached.get("json")
    return (data, text) if isinstance(data, dict) and isinstance(text, str) else None


def store(sysroot: str | os.PathLike[str], data: dict, text: str,  # type: ignore[type-arg]
          key: list[object]) -> None:
    """Save ``data`` (and ``text``, its JSON), computed while the sysroot matched ``key``."""
    path = os.path.join(os.fspath(sysroot), CACHE)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = os.path.join(os.path.dirname(path), f".status.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            marshal.dump({"key": key, "status": data, "json": text}, f)
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass
