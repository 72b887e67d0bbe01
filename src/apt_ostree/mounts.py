"""Mounts as context managers: an overlay that collects a tree's changes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .run import run


@contextmanager
def overlay(lower: Path, upper: Path, work: Path, merged: Path) -> Iterator[Path]:
    """Mount ``lower`` (read-only) + ``upper`` (the changes) at ``merged``."""
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    run(["mount", "-t", "overlay", "overlay", "-o", opts, os.fspath(merged)], what="mount overlay")
    try:
        yield merged
    finally:
        # A lazy unmount as the fallback: never leave the overlay behind.
        if run(["umount", os.fspath(merged)], check=False).returncode != 0:
            run(["umount", "--lazy", os.fspath(merged)], what="umount overlay", check=False)
