"""Run dpkg on a tree inside a sandbox (DESIGN.md decision 7).

The sandbox root is a tmpfs: only the tree's /usr (and /usr/etc as /etc) is
bound in, so bubblewrap's mount points are never created inside the tree;
/var is scratch with links to the package state kept in /usr; no network.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ScriptFailed
from ..run import DEFAULT_PATH, run

ADMINDIR = "/usr/share/dpkg/database"
DEBS_MOUNT = "/run/apt-ostree/debs"
USER_DBS = ("passwd", "group", "shadow", "gshadow")
POLICY_RC_D = "#!/bin/sh\n# apt-ostree: no services are started while packages are installed\nexit 101\n"


def dpkg_sandbox(tree: Path, debs: Path, var: Path, policy: Path) -> list[str]:
    """bubblewrap options: ``tree``'s /usr and /usr/etc, ``var`` as /var, no network."""
    # No user namespace: only uid 0 would be mapped, and dpkg and the shadow tools
    # must chown files to other users and groups.
    opts = ["bwrap", "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-net",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--tmpfs", "/",
            "--bind", os.fspath(tree / "usr"), "/usr",
            "--bind", os.fspath(tree / "usr/etc"), "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = tree / name
        if target.is_symlink():
            opts += ["--symlink", os.readlink(target), f"/{name}"]
    opts += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
             "--bind", os.fspath(var), "/var"]
    opts += ["--ro-bind", os.fspath(debs), DEBS_MOUNT,
             "--ro-bind", os.fspath(policy), "/usr/sbin/policy-rc.d",
             "--setenv", "PATH", DEFAULT_PATH, "--setenv", "DEBIAN_FRONTEND", "noninteractive",
             "--setenv", "DPKG_ADMINDIR", ADMINDIR, "--chdir", "/", "--"]
    return opts


def scratch_var(var: Path, state_links: Sequence[tuple[str, str]]) -> None:
    """A /var for the sandbox: the usual directories, package state linked into /usr."""
    for d in ("lib/apt", "lib/systemd", "cache", "log", "tmp", "spool"):
        (var / d).mkdir(parents=True, exist_ok=True)
    for var_path, usr_path in state_links:
        link = var / var_path.removeprefix("var/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath("/" + usr_path, os.path.dirname("/" + var_path)))


def install_debs(tree: Path, debs: Path, names: Sequence[str], var: Path, scratch: Path,
                 remove: Sequence[str] = ()) -> str:
    """Purge ``remove``, then ``dpkg -i`` the files ``names`` (in ``debs``), in ``tree``."""
    policy = scratch / "policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    sandbox = dpkg_sandbox(tree, debs, var, policy)
    common = ["dpkg", f"--admindir={ADMINDIR}", "--force-unsafe-io", "--force-confdef",
              "--force-confold"]
    output = ""
    if remove:
        output += run([*common, "--purge", *remove], sandbox=sandbox,
                      what="dpkg --purge (maintainer scripts)", error=ScriptFailed).stdout
    if names:
        output += run([*common, "-i", *(f"{DEBS_MOUNT}/{n}" for n in names)], sandbox=sandbox,
                      what="dpkg (maintainer scripts)", error=ScriptFailed).stdout
    return output
