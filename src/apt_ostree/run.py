"""The only place that starts a subprocess or a sandbox.

``run()`` runs a command with a clean environment and stdin from /dev/null,
captures its output, and raises ``CommandFailed`` (or a subclass) carrying the
tail of that output.  A sandbox is a value: the small functions below return
bubblewrap option lists, and ``run(argv, sandbox=...)`` prefixes them.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import CommandFailed

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal, predictable environment for child processes."""
    env = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PATH": DEFAULT_PATH, "HOME": "/root"}
    for passthrough in ("SOURCE_DATE_EPOCH", "TMPDIR", "http_proxy", "https_proxy",
                        "no_proxy", "OSTREE_SYSROOT_DEBUG"):
        if passthrough in os.environ:
            env[passthrough] = os.environ[passthrough]
    if extra:
        env.update(extra)
    return env


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    sandbox: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    input: str | None = None,
    check: bool = True,
    capture: bool = True,
    what: str | None = None,
    error: type[CommandFailed] = CommandFailed,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (inside ``sandbox`` if given); raise ``error`` on failure.

    stdout and stderr are captured together so a failure can show the
    interleaved tail; with ``capture=False`` they go to our own stderr.
    """
    full = [*sandbox, *(os.fspath(a) for a in argv)]
    log.debug("run: %s", " ".join(full))
    try:
        proc = subprocess.run(
            full,
            env=clean_env(env),
            cwd=cwd,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            text=True,
            errors="replace",
            check=False,
        )
    except FileNotFoundError as e:
        raise error(full, 127, f"{e.filename}: command not found", what=what) from e
    if check and proc.returncode != 0:
        log.debug("failed: %s\n%s", " ".join(full), proc.stdout or "")
        raise error(full, proc.returncode, proc.stdout or "", what=what)
    return proc


# ---- sandbox values -------------------------------------------------------


def bwrap_base(root: Path) -> list[str]:
    """bubblewrap with ``root`` as /, nothing of the host visible."""
    return ["bwrap", "--bind", os.fspath(root), "/", "--die-with-parent",
            "--new-session", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]


def apivfs_options() -> list[str]:
    """Fresh /proc, /dev and a scratch /tmp and /run."""
    return ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"]


def network_options(network: bool = False) -> list[str]:
    return [] if network else ["--unshare-net"]


def sandbox_in(root: Path, *, network: bool = False,
               binds: Sequence[tuple[Path, str]] = ()) -> list[str]:
    """The sandbox scripts run in: ``root`` as /, API filesystems, no network."""
    opts = bwrap_base(root) + apivfs_options() + network_options(network)
    for src, dest in binds:
        opts += ["--ro-bind", os.fspath(src), dest]
    opts += ["--setenv", "PATH", DEFAULT_PATH, "--chdir", "/", "--"]
    return opts


def run_detached(argv: Sequence[str | os.PathLike[str]]) -> None:
    """Start ``argv`` in its own session and do not wait for it (housekeeping only)."""
    subprocess.Popen([os.fspath(a) for a in argv], env=clean_env(), stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
