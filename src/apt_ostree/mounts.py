"""Mounts as context managers: an overlay that collects a tree's changes.

mount(2) is called directly (no mount(8) process: layering is on the
interactive path and a process start costs more than the mount).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import AptOstreeError

MNT_DETACH = 2
# unshare(2) and mount(2) flags (no Python binding in 3.11).
CLONE_NEWNS = 0x00020000
MS_REMOUNT = 0x20
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def private_mount_namespace_with_writable(target: str) -> None:
    """Move this (single-threaded) process into a mount namespace of its own and
    remount ``target`` read-write there; other processes keep seeing it as it was."""
    def check(ret: int, what: str) -> None:
        if ret != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    check(_libc.unshare(CLONE_NEWNS), "unshare")
    check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
    check(_libc.mount(None, os.fsencode(target), None, MS_REMOUNT, None),
          f"remounting {target} read-write")


def _mount(source: str, target: Path, fstype: str, options: str) -> None:
    if _libc.mount(source.encode(), os.fsencode(target), fstype.encode(), 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise AptOstreeError(f"cannot mount {fstype} on {target}: {os.strerror(err)}")


def _umount(target: Path) -> None:
    if _libc.umount2(os.fsencode(target), 0) != 0:
        # Never leave the mount behind: detach it lazily.
        _libc.umount2(os.fsencode(target), MNT_DETACH)


def unmount_if_mounted(target: Path) -> None:
    """Detach whatever is mounted at ``target`` (left by a killed process)."""
    if target.is_dir() and os.path.ismount(target):
        _umount(target)


@contextmanager
def overlay(lower: Path, upper: Path, work: Path, merged: Path) -> Iterator[Path]:
    """Mount ``lower`` (read-only) + ``upper`` (the changes) at ``merged``."""
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    _mount("overlay", merged, "overlay", f"lowerdir={lower},upperdir={upper},workdir={work}")
    try:
        yield merged
    finally:
        _umount(merged)
