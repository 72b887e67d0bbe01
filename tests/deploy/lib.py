"""Helpers for the deployment tests: run the CLIs, read what libostree wrote, check a sysroot.

Every check reads the sysroot the way an administrator would: the real
``ostree admin status`` and ``ostree fsck``, the BLS files under
``boot/loader/entries`` and the deployment directories themselves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# libostree sets the immutable bit on deployments; tests must be able to delete them.
ENV = {"OSTREE_SYSROOT_DEBUG": "mutable-deployments", "LC_ALL": "C.UTF-8"}
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
APT_OSTREE = [sys.executable, "-m", "apt_ostree"]


def run(argv: Sequence[str | os.PathLike[str]], *, check: bool = False,
        env: Mapping[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([os.fspath(a) for a in argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, **ENV, **(env or {})},
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def aot(sysroot: Path | None, *args: str | os.PathLike[str], as_nobody: bool = False,
        check: bool = False) -> subprocess.CompletedProcess[str]:
    """``apt-ostree [--sysroot DIR] ARGS``."""
    prefix = NOBODY if as_nobody else []
    glob = ["--sysroot", sysroot] if sysroot is not None else []
    return run([*prefix, *APT_OSTREE, *glob, *args], check=check)


def aot_ok(sysroot: Path | None, *args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    proc = aot(sysroot, *args)
    assert proc.returncode == 0, (f"apt-ostree {' '.join(map(str, args))}: exit {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def assert_error(proc: subprocess.CompletedProcess[str], *needles: str, code: int = 1) -> str:
    """The error contract: exit 1, exactly one 'error:' line on stderr, no traceback."""
    assert proc.returncode == code, (f"exit {proc.returncode}, expected {code}\n"
                                     f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one 'error:' line:\n{proc.stderr}"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def replace_file(path: Path, content: str | bytes) -> None:
    """Write ``path`` as a new inode: sysroots under test share inodes with their template."""
    path.unlink(missing_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


def status_json(sysroot: Path) -> dict[str, Any]:
    return json.loads(aot_ok(sysroot, "status", "--json").stdout)  # type: ignore[no-any-return]


# ---- what libostree says --------------------------------------------------------


@dataclass
class AdminDeployment:
    """One deployment as ``ostree admin status`` prints it."""

    osname: str
    checksum: str
    serial: int
    booted: bool
    marks: list[str] = field(default_factory=list)
    props: dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str | None:
        return self.props.get("Version")

    @property
    def origin(self) -> str | None:
        return self.props.get("origin refspec")

    @property
    def pinned(self) -> bool:
        return self.props.get("Pinned") == "yes"


HEAD_RE = re.compile(r"^([* ]) (\S+) ([0-9a-f]{64})\.(\d+)((?: \(\w+\))*)$")


def admin_status(sysroot: Path) -> list[AdminDeployment]:
    out = run(["ostree", "admin", "status", f"--sysroot={sysroot}"], check=True).stdout
    deployments: list[AdminDeployment] = []
    for line in out.splitlines():
        m = HEAD_RE.match(line)
        if m:
            deployments.append(AdminDeployment(m[2], m[3], int(m[4]), m[1] == "*",
                                               re.findall(r"\((\w+)\)", m[5])))
        elif line.startswith("    ") and ":" in line and deployments:
            key, _, value = line.strip().partition(":")
            deployments[-1].props[key.strip()] = value.strip()
        elif line.strip() and not line.startswith("    "):
            raise AssertionError(f"unexpected line in ostree admin status:\n{out}")
    return deployments


def fsck(sysroot: Path) -> None:
    proc = run(["ostree", "fsck", f"--repo={sysroot}/ostree/repo"])
    assert proc.returncode == 0 and "completed successfully - no errors found" in proc.stdout, \
        f"ostree fsck failed:\n{proc.stdout}\n{proc.stderr}"


def commit_timestamp(sysroot: Path, checksum: str) -> int:
    """The commit's date as ``ostree show`` prints it, in seconds since the epoch."""
    out = run(["ostree", "show", f"--repo={sysroot}/ostree/repo", checksum], check=True).stdout
    m = re.search(r"^Date:\s+(.+)$", out, re.M)
    assert m, out
    return int(datetime.strptime(m[1].strip(), "%Y-%m-%d %H:%M:%S %z").timestamp())


def deployment_dir(sysroot: Path, d: AdminDeployment) -> Path:
    return sysroot / "ostree/deploy" / d.osname / "deploy" / f"{d.checksum}.{d.serial}"


def origin_file(sysroot: Path, d: AdminDeployment) -> Path:
    return sysroot / "ostree/deploy" / d.osname / "deploy" / f"{d.checksum}.{d.serial}.origin"


# ---- boot entries ------------------------------------------------------------------


@dataclass(frozen=True)
class BootEntry:
    path: Path
    fields: dict[str, str]

    @property
    def index(self) -> int:
        m = re.search(r"\(ostree:(\d+)\)$", self.fields["title"])
        assert m, self.fields["title"]
        return int(m[1])

    @property
    def options(self) -> list[str]:
        # The kernel's rule: whitespace inside double quotes does not split.
        return re.findall(r'(?:[^\s"]|"[^"]*")+', self.fields.get("options", ""))

    @property
    def kargs(self) -> list[str]:
        return [o for o in self.options if not o.startswith("ostree=")]

    @property
    def ostree_arg(self) -> str:
        found = [o for o in self.options if o.startswith("ostree=")]
        assert len(found) == 1, self.fields
        return found[0].removeprefix("ostree=")


def boot_entries(sysroot: Path) -> list[BootEntry]:
    """The BLS entries, in deployment order (ostree:0 first)."""
    entries = []
    for path in (sysroot / "boot/loader/entries").glob("*.conf"):
        fields = {}
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key:
                fields[key] = value.strip()
        entries.append(BootEntry(path, fields))
    return sorted(entries, key=lambda e: e.index)


def tree_kernel(deployment: Path) -> str:
    """The one kernel version under the deployment's /usr/lib/modules."""
    kvers = [p.name for p in (deployment / "usr/lib/modules").iterdir()
             if (p / "vmlinuz").exists()]
    assert len(kvers) == 1, kvers
    return kvers[0]


# ---- one consistency check after every step ----------------------------------------


def check_sysroot(sysroot: Path, *, kargs: Sequence[Sequence[str]] | None = None,
                  versions: Sequence[str | None] | None = None,
                  checksums: Sequence[str] | None = None,
                  with_fsck: bool = True) -> list[AdminDeployment]:
    """ostree fsck is clean, apt-ostree status agrees with ostree admin status, the BLS
    entries point at the right deployment, kernel, initramfs and kernel arguments.

    ``kargs``/``versions``/``checksums``, when given, are what each deployment must have,
    in boot order.  ``with_fsck=False`` where a step cannot touch the repository.
    """
    if with_fsck:
        fsck(sysroot)
    admin = admin_status(sysroot)
    ours = status_json(sysroot)["deployments"]
    assert [(d["osname"], d["checksum"], d["serial"]) for d in ours] == \
        [(d.osname, d.checksum, d.serial) for d in admin], (ours, admin)
    for a, o in zip(admin, ours, strict=True):
        assert o["version"] == a.version
        assert o["origin"] == a.origin
        assert o["pinned"] == a.pinned
        assert o["booted"] is False and o["staged"] is False
        assert o["id"] == f"{a.osname}-{a.checksum}.{a.serial}"
    assert [d["default"] for d in ours] == [i == 0 for i in range(len(ours))]
    for o in ours:
        assert o["timestamp"] == commit_timestamp(sysroot, o["checksum"]), o

    entries = boot_entries(sysroot)
    assert [e.index for e in entries] == list(range(len(admin))), [e.path.name for e in entries]
    for entry, a, o in zip(entries, admin, ours, strict=True):
        deployment = deployment_dir(sysroot, a)
        # ostree=/ostree/boot.N/OS/BOOTCSUM/I is a symlink chain to the deployment.
        target = (sysroot / entry.ostree_arg.lstrip("/")).resolve()
        assert target == deployment.resolve(), (entry.fields, deployment)
        kver = tree_kernel(deployment)
        linux = sysroot / "boot" / entry.fields["linux"].lstrip("/")
        initrd = sysroot / "boot" / entry.fields["initrd"].lstrip("/")
        assert linux.name == f"vmlinuz-{kver}", entry.fields
        assert initrd.name == f"initramfs-{kver}.img", entry.fields
        assert linux.read_bytes() == (deployment / f"usr/lib/modules/{kver}/vmlinuz").read_bytes()
        assert initrd.read_bytes() == (deployment / f"usr/lib/modules/{kver}/initramfs.img").read_bytes()
        assert entry.kargs == o["kernel-arguments"], (entry.fields, o)
        if a.version:
            assert a.version in entry.fields["title"]
    if kargs is not None:
        assert [e.kargs for e in entries] == [list(k) for k in kargs]
    if versions is not None:
        assert [a.version for a in admin] == list(versions)
    if checksums is not None:
        assert [a.checksum for a in admin] == list(checksums)
    return admin


def snapshot(sysroot: Path) -> tuple[object, ...]:
    """Everything a failed command must leave alone: deployments, origins, boot entries, refs."""
    admin = [(d.osname, d.checksum, d.serial, d.pinned, sorted(d.props.items()))
             for d in admin_status(sysroot)]
    origins = {p.name: p.read_bytes() for p in sysroot.glob("ostree/deploy/*/deploy/*.origin")}
    entries = {p.name: p.read_text() for p in (sysroot / "boot/loader/entries").glob("*.conf")}
    deploy_dirs = sorted(p.name for p in sysroot.glob("ostree/deploy/*/deploy/*") if p.is_dir())
    refs = run(["ostree", "refs", f"--repo={sysroot}/ostree/repo"], check=True).stdout
    return admin, origins, entries, deploy_dirs, sorted(refs.split())
