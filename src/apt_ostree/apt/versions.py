"""Debian version comparison."""

from __future__ import annotations

import apt_pkg

from .backend import _init


def compare_versions(a: str, b: str) -> int:
    """<0, 0 or >0 as Debian orders versions ``a`` and ``b``."""
    _init()
    return int(apt_pkg.version_compare(a, b))
