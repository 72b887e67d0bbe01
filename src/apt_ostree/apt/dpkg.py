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


def dpkg_sandbox(tree: Path, debs: Path, state_links: Sequence[tuple[str, str]],
                 policy: Path) -> list[str]:
    opts = ["bwrap", "--die-with-parent", "--new-session", "--unshare-all",
            "--tmpfs", "/",
            "--bind", os.fspath(tree / "usr"), "/usr",
            "--bind", os.fspath(tree / "usr/etc"), "/etc"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = tree / name
        if target.is_symlink():
            opts += ["--symlink", os.readlink(target), f"/{name}"]
    opts += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
             "--tmpfs", "/var", "--dir", "/var/lib", "--dir", "/var/cache", "--dir", "/var/log",
             "--dir", "/var/lib/systemd", "--dir", "/var/lib/apt"]
    for var_path, usr_path in state_links:
        if (tree / usr_path).exists():
            opts += ["--symlink", os.path.relpath("/" + usr_path, os.path.dirname("/" + var_path)),
                     "/" + var_path]
    opts += ["--ro-bind", os.fspath(debs), DEBS_MOUNT,
             "--ro-bind", os.fspath(policy), "/usr/sbin/policy-rc.d",
             "--setenv", "PATH", DEFAULT_PATH, "--setenv", "DEBIAN_FRONTEND", "noninteractive",
             "--setenv", "DPKG_ADMINDIR", ADMINDIR, "--chdir", "/", "--"]
    return opts


def install_debs(tree: Path, debs: Path, names: Sequence[str],
                 state_links: Sequence[tuple[str, str]], scratch: Path,
                 remove: Sequence[str] = ()) -> str:
    """Purge ``remove``, then ``dpkg -i`` the files ``names`` (in ``debs``), in ``tree``."""
    policy = scratch / "policy-rc.d"
    policy.write_text(POLICY_RC_D)
    policy.chmod(0o755)
    sandbox = dpkg_sandbox(tree, debs, state_links, policy)
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
