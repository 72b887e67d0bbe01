"""Read a tree's dpkg database (installed packages) without running dpkg."""

from __future__ import annotations

from pathlib import Path

import apt_pkg

from ..packages import Package

# Where the database lives in a tree adapted to OSTree, and in a plain one.
OSTREE_ADMINDIR = "usr/share/dpkg/database"
PLAIN_ADMINDIR = "var/lib/dpkg"


def admindir(root: Path) -> Path:
    """The dpkg database directory of the tree at ``root``."""
    for rel in (OSTREE_ADMINDIR, PLAIN_ADMINDIR):
        if (root / rel / "status").is_file():
            return root / rel
    raise FileNotFoundError(f"{root}: no dpkg database")


def installed_packages(admin: Path) -> list[Package]:
    """Packages whose status is 'install ok installed' in ``admin``/status."""
    out = []
    with open(admin / "status", encoding="utf-8") as f:
        for section in apt_pkg.TagFile(f):
            status = section.get("Status", "").split()
            if status[-1:] != ["installed"]:
                continue
            out.append(Package(section["Package"], section["Version"],
                               section.get("Architecture", "all")))
    return sorted(out)
