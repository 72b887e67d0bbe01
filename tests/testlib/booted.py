"""A booted OSTree system without a VM: a deployment of a directory sysroot at ``/``.

``BootedSystem.boot()`` does what the boot loader, ostree-prepare-root and
init do on a real machine, in new mount and PID namespaces:

- the default boot entry (``(ostree:0)``) is read from ``SYSROOT/boot/loader/entries``
  and its ``ostree=`` argument resolved to a deployment directory;
- that directory is bound at the new ``/`` with ``/usr`` read-only (or, for a
  deployment unlocked with ``--hotfix``, its persistent /usr overlay, as
  ostree-prepare-root mounts it), the sysroot at ``/sysroot``, its /boot at
  ``/boot``, the stateroot's /var at ``/var``; fresh /proc, /run and /tmp;
  ``/run/ostree-booted`` exists and ``/proc/cmdline`` is the entry's options;
- ``systemd-tmpfiles --create --boot`` populates /var as at boot.

libostree in there reports the deployment as booted (``ostree admin status``
shows the ``*``).  The namespace's PID 1 is a ``sleep``; commands enter it with
``nsenter`` and run the tree's own programs: the tree must contain python3 and
apt-ostree's runtime dependencies, and apt-ostree itself comes from this
checkout (bound read-only at ``/run/apt-ostree-src``).  ``shutdown()`` runs
what ostree-finalize-staged.service runs at shutdown (``ostree admin
finalize-staged``) and kills the namespace; ``reboot()`` is shutdown + boot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[2] / "src"
INSIDE_SRC = "/run/apt-ostree-src"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Runs in the new namespaces as their PID 1 (the host's sh), then becomes the
# tree's ``sleep``.  Arguments: NEWROOT DEPLOYMENT SYSROOT VAR CMDLINE SRC HOTFIX BIND...
_BOOT_SCRIPT = r"""
set -eu
new=$1 dep=$2 sysroot=$3 var=$4 cmdline=$5 src=$6 hotfix=$7
shift 7
mount --make-rprivate /
mount --bind "$dep" "$new"
if [ "$hotfix" = 1 ]; then
    # ostree-prepare-root: a deployment unlocked with --hotfix keeps its /usr overlay.
    (cd "$dep" && mount -t overlay overlay \
        -o lowerdir=usr,upperdir=.usr-ovl-upper,workdir=.usr-ovl-work "$new/usr")
else
    mount --bind "$dep/usr" "$new/usr"
    mount -o remount,bind,ro "$new/usr"
fi
mount --bind "$sysroot" "$new/sysroot"
mount --bind "$sysroot/boot" "$new/boot"
mount --bind "$var" "$new/var"
mount -t proc proc "$new/proc"
mount --rbind /dev "$new/dev"
mount -t sysfs sysfs "$new/sys" 2>/dev/null || true
mount -t tmpfs -o mode=0755 tmpfs "$new/run"
mount -t tmpfs -o mode=1777 tmpfs "$new/tmp"
: > "$new/run/ostree-booted"
printf '%s\n' "$cmdline" > "$new/run/.cmdline"
mount --bind "$new/run/.cmdline" "$new/proc/cmdline"
mkdir -p "$new/run/apt-ostree-src"
mount --bind "$src" "$new/run/apt-ostree-src"
mount -o remount,bind,ro "$new/run/apt-ostree-src"
for path in "$@"; do
    mkdir -p "$new$path"
    mount --bind "$path" "$new$path"
done
mkdir "$new/run/oldroot"
cd "$new"
pivot_root . run/oldroot
umount -l /run/oldroot
rmdir /run/oldroot
exec /usr/bin/sleep infinity
"""


_compiled = False


def _compile_source() -> None:
    """An installed apt-ostree comes byte-compiled (Debian's py3compile); so does this one
    (once per test process), or every command inside would compile it again (the bind is
    read-only)."""
    global _compiled
    if not _compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(SRC)], check=True)
        _compiled = True


@dataclass(frozen=True)
class BootEntry:
    path: Path
    title: str
    options: str

    @property
    def ostree_arg(self) -> str:
        return next(a.split("=", 1)[1] for a in self.options.split() if a.startswith("ostree="))


def boot_entries(sysroot: Path) -> list[BootEntry]:
    entries = []
    for conf in sorted((sysroot / "boot/loader/entries").glob("*.conf")):
        fields = dict(line.split(" ", 1) for line in conf.read_text().splitlines() if " " in line)
        entries.append(BootEntry(conf, fields.get("title", ""), fields.get("options", "")))
    return entries


def default_entry(sysroot: Path) -> BootEntry:
    """The entry a boot loader starts: libostree titles the default deployment's ``(ostree:0)``."""
    entries = boot_entries(sysroot)
    chosen = [e for e in entries if e.title.endswith("(ostree:0)")]
    assert len(chosen) == 1, f"no single default boot entry in {[e.title for e in entries]}"
    return chosen[0]


class BootedSystem:
    """One "machine": a directory sysroot that can be booted, entered, shut down, rebooted."""

    def __init__(self, sysroot: Path, workdir: Path, binds: Sequence[Path] = ()) -> None:
        self.sysroot = sysroot
        self.workdir = workdir
        self.binds = [Path(b) for b in binds]
        self._init: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.deployment: Path | None = None
        self.boots = 0

    # ---- power --------------------------------------------------------------

    def boot(self) -> Path:
        """Boot the default entry; returns the deployment directory now at ``/``."""
        assert self._init is None, "already booted"
        entry = default_entry(self.sysroot)
        deployment = Path(os.path.realpath(self.sysroot / entry.ostree_arg.lstrip("/")))
        assert deployment.is_dir(), f"{entry.ostree_arg} does not resolve to a deployment"
        var = deployment.parent.parent / "var"
        newroot = self.workdir / "root"
        newroot.mkdir(parents=True, exist_ok=True)
        hotfix = "1" if (deployment / ".usr-ovl-work").is_dir() else "0"
        _compile_source()
        self._init = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--propagation", "private",
             "sh", "-c", _BOOT_SCRIPT, "boot", str(newroot), str(deployment), str(self.sysroot),
             str(var), entry.options, str(SRC), hotfix, *map(str, self.binds)],
            stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self._wait_for_init()
        self.deployment = deployment
        self.boots += 1
        # systemd-tmpfiles-setup.service: /var as the tree's tmpfiles.d describe it.
        self.run("systemd-tmpfiles", "--create", "--boot")
        return deployment

    def _wait_for_init(self) -> int:
        assert self._init is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._init.poll() is not None:
                err = self._init.stderr.read().decode() if self._init.stderr else ""
                raise AssertionError(f"boot failed ({self._init.returncode}):\n{err}")
            try:
                children = Path(f"/proc/{self._init.pid}/task/{self._init.pid}/children").read_text().split()
            except OSError:
                children = []
            if children:
                pid = int(children[0])
                try:
                    if os.readlink(f"/proc/{pid}/exe").endswith("/sleep"):
                        return pid
                except OSError:
                    pass
            time.sleep(0.02)
        raise AssertionError("boot timed out")

    def shutdown(self, *, finalize: bool = True) -> subprocess.CompletedProcess[str] | None:
        """Power off; first, as ostree-finalize-staged.service does, finalize a staged deployment."""
        proc = None
        if finalize and self.exists("/run/ostree/staged-deployment"):
            proc = self.run("ostree", "admin", "finalize-staged")
            assert proc.returncode == 0, f"finalize-staged failed:\n{proc.stdout}{proc.stderr}"
        self.crash()
        return proc

    def crash(self) -> None:
        """Power off without any shutdown work (PID 1 killed: the whole namespace goes)."""
        if self._init is None:
            return
        assert self.pid is not None
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._init.wait(timeout=20)
        if self._init.stderr:
            self._init.stderr.close()
        self._init = None
        self.pid = None

    def reboot(self) -> Path:
        self.shutdown()
        return self.boot()

    # ---- inside ---------------------------------------------------------------

    def _argv(self, argv: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None) -> list[str]:
        assert self.pid is not None, "not booted"
        environment = {"PATH": PATH, "PYTHONPATH": INSIDE_SRC, "HOME": "/root", "LANG": "C.UTF-8",
                       "OSTREE_SYSROOT_DEBUG": "mutable-deployments", **(env or {})}
        return ["nsenter", "-t", str(self.pid), "-m", "-p", "--", "/usr/bin/env", "-i",
                *(f"{k}={v}" for k, v in environment.items()), *(os.fspath(a) for a in argv)]

    def run(self, *argv: str | os.PathLike[str], env: Mapping[str, str] | None = None,
            input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a program of the booted tree (as root, in the booted system's namespaces)."""
        return subprocess.run(self._argv(argv, env), capture_output=True, text=True, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              timeout=timeout)

    def popen(self, *argv: str | os.PathLike[str], env: Mapping[str, str] | None = None,
              **kwargs: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(self._argv(argv, env), text=True, **kwargs)

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return self.run("sh", "-c", script)

    def cli(self, *args: str, env: Mapping[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``apt-ostree --sysroot / ARGS`` inside: direct mode on the booted system."""
        return self.run("python3", "-m", "apt_ostree", "--sysroot", "/", *args, env=env,
                        timeout=timeout)

    def exists(self, path: str) -> bool:
        return self.run("test", "-e", path).returncode == 0

    def read(self, path: str) -> str:
        proc = self.run("cat", path)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def mounts(self) -> list[tuple[str, str, str]]:
        """(target, fstype, options) of every mount in the booted system."""
        out = self.read("/proc/self/mounts")
        return [(f[1], f[2], f[3]) for f in (line.split() for line in out.splitlines())]

    def __enter__(self) -> BootedSystem:
        return self

    def __exit__(self, *exc: object) -> None:
        self.crash()
