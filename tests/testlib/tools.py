"""Run the real tools from tests: the apt-ostree CLI and the ``ostree`` CLI."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml

from apt_ostree.compose.treefile import host_sources


def run_cli(*args: str | os.PathLike[str], env: Mapping[str, str] | None = None,
            cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``apt-ostree ARGS`` in a subprocess (stdout and stderr kept apart)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "apt_ostree", *map(os.fspath, args)],
                          capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def assert_one_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The error contract: exit 1, an 'error:' message on stderr naming ``needles``, no traceback."""
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    err = proc.stderr
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, f"expected exactly one 'error:' line:\n{err}"
    message = err[err.index("error:"):]
    for needle in needles:
        assert needle in message, f"{needle!r} not in the error message:\n{message}"
    return message


class OstreeCli:
    """The real ``ostree`` command on one repository."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo

    def run(self, *args: str | os.PathLike[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["ostree", f"--repo={self.repo}", *map(os.fspath, args)],
                              capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"ostree {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def __call__(self, *args: str | os.PathLike[str]) -> str:
        return self.run(*args).stdout

    def rev_parse(self, ref: str) -> str | None:
        proc = self.run("rev-parse", ref, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def refs(self) -> list[str]:
        return sorted(self("refs").split())

    def exists(self, rev: str, path: str) -> bool:
        return self.run("ls", rev, path, check=False).returncode == 0

    def ls_names(self, rev: str, path: str) -> list[str]:
        """Names directly under ``path`` (``ostree ls`` lists the directory itself first)."""
        out = []
        for line in self("ls", rev, path).splitlines()[1:]:
            name = line.split()[4]  # mode uid gid size name [-> target]
            out.append(name.rsplit("/", 1)[-1])
        return out

    def cat(self, rev: str, path: str) -> str:
        return self("cat", rev, path)

    def metadata(self, rev: str, key: str) -> str:
        return self("show", f"--print-metadata-key={key}", rev).strip()

    def fsck(self) -> None:
        self("fsck")

    def checkout(self, rev: str, dest: Path) -> Path:
        self("checkout", "-U", rev, dest)
        return dest


@dataclass(frozen=True)
class Treefile:
    path: Path
    data: Mapping[str, object]

    @property
    def ref(self) -> str:
        return str(self.data["ref"])


def write_treefile(path: Path, data: Mapping[str, object], *, extra_sources: Sequence[str] = (),
                   with_host_sources: bool = True) -> Treefile:
    """Write a treefile whose sources are this machine's plus ``extra_sources``."""
    full = dict(data)
    if "sources" not in full:
        full["sources"] = [*(host_sources() if with_host_sources else []), *extra_sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(full, sort_keys=False))
    return Treefile(path, full)


# ---- capability probes ------------------------------------------------------


def probe_root() -> str | None:
    """Why root-tier tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("mmdebstrap", "ostree", "bwrap", "dpkg-deb", "apt-ftparchive", "systemctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    # bubblewrap may be installed but unusable (no user namespaces, seccomp, a container).
    proc = subprocess.run(["bwrap", "--bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                           "--unshare-net", "--unshare-pid", "true"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return f"bubblewrap does not work here: {proc.stderr.strip()}"
    proc = subprocess.run(["ostree", "--version"], capture_output=True, text=True)
    if proc.returncode != 0:
        return "ostree does not run"
    return None


def probe_network(sources: Sequence[str] | None = None, timeout: float = 3.0) -> str | None:
    """Why this machine's apt sources are unreachable, or None when one answers."""
    sources = host_sources() if sources is None else sources
    uris = []
    for s in sources:
        for word in s.replace("\n", " ").split():
            if word.startswith(("http://", "https://")):
                uris.append(urlparse(word))
    if not uris:
        return "this machine has no http(s) apt sources"
    for uri in uris:
        port = uri.port or (443 if uri.scheme == "https" else 80)
        try:
            with socket.create_connection((uri.hostname or "", port), timeout=timeout):
                return None
        except OSError:
            continue
    return f"no apt source reachable ({', '.join(sorted({u.hostname or '' for u in uris}))})"
