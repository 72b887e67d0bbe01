"""Read a tree's dpkg database (installed packages) without running dpkg."""

from __future__ import annotations

from pathlib import Path

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
    """Packages whose status is 'install ok installed' in ``admin``/status.

    Parsed from text read at once: nothing stays open on the tree (it may be
    an overlay about to be unmounted).
    """
    out = []
    text = (admin / "status").read_text(encoding="utf-8", errors="replace")
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            if key in ("Package", "Version", "Architecture", "Status"):
                fields[key] = value.strip()
        if "Package" in fields and fields.get("Status", "").split()[-1:] == ["installed"]:
            out.append(Package(fields["Package"], fields.get("Version", ""),
                               fields.get("Architecture", "all")))
    return sorted(out)
