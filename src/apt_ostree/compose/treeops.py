"""Treefile-driven changes to a built root filesystem.

add-files, units, default-target, postprocess scripts (in a sandbox) and
remove-files, applied in that order before the layout is adapted.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from pathlib import Path

from ..errors import LayoutError, ScriptFailed
from ..progress import NullReporter, Reporter
from ..run import run, sandbox_in
from .treefile import Treefile

_MAGIC = re.compile(r"[*?[]")


def _resolve_in_root(root: Path, path: str, *, follow_last: bool = True) -> Path:
    """``path`` inside the tree at ``root``, symlinks followed as if ``root`` were /.

    The tree's absolute symlinks (/var/run -> /run) must not lead to the
    build host's files.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = root
    hops = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            current = current.parent if current != root else root
            continue
        candidate = current / name
        if candidate.is_symlink() and (parts or follow_last):
            hops += 1
            if hops > 40:
                raise LayoutError(f"{path}: too many levels of symbolic links")
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            if target.startswith("/"):
                current = root
            continue
        current = candidate
    return current


def _glob_in_root(root: Path, pattern: str) -> list[Path]:
    """The paths matching ``pattern`` inside the tree; the last component is not followed."""
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise LayoutError(f"{pattern}: outside the tree")
    found = [root]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        matches: list[Path] = []
        for base in found:
            directory = _resolve_in_root(root, "/" + os.fspath(base.relative_to(root)))
            if not directory.is_dir():
                continue
            if _MAGIC.search(part):
                names = sorted(n for n in os.listdir(directory) if fnmatch.fnmatchcase(n, part)
                               and (part.startswith(".") or not n.startswith(".")))
            else:
                names = [part] if (directory / part).exists() or (directory / part).is_symlink() else []
            matches += [directory / n for n in names]
        found = matches
        if not last:
            found = [p for p in found if p.is_dir()]
    return found


def add_files(root: Path, treefile: Treefile) -> None:
    for item in treefile.add_files:
        dest = _resolve_in_root(root, item.dest, follow_last=False)
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            dest.unlink()
        elif dest.is_dir():
            raise LayoutError(f"add-files: {item.dest} is a directory in the tree")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(item.source, dest)
        os.chown(dest, 0, 0)


def remove_files(root: Path, treefile: Treefile) -> None:
    for pattern in treefile.remove_files:
        for p in _glob_in_root(root, pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def enable_units(root: Path, treefile: Treefile) -> None:
    for unit in treefile.units:
        run(["systemctl", f"--root={root}", "enable", unit], what=f"enabling {unit}")
    if treefile.default_target:
        run(["systemctl", f"--root={root}", "set-default", treefile.default_target],
            what=f"setting the default target to {treefile.default_target}")


def run_postprocess(root: Path, treefile: Treefile, reporter: Reporter) -> None:
    for i, script in enumerate(treefile.postprocess):
        with reporter.task(f"Running postprocess script {i + 1}/{len(treefile.postprocess)}"):
            tmp = root / "tmp"
            tmp.mkdir(exist_ok=True)
            run(["/bin/sh", "-ec", script], sandbox=sandbox_in(root),
                what=f"postprocess[{i}]", error=ScriptFailed)


def apply_treefile(root: Path, treefile: Treefile, reporter: Reporter | None = None) -> None:
    reporter = reporter or NullReporter()
    add_files(root, treefile)
    enable_units(root, treefile)
    run_postprocess(root, treefile, reporter)
    remove_files(root, treefile)
