"""Treefile-driven changes to a built root filesystem.

add-files, units, default-target, postprocess scripts (in a sandbox) and
remove-files, applied in that order before the layout is adapted.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

from ..errors import LayoutError, ScriptFailed
from ..progress import NullReporter, Reporter
from ..run import run, sandbox_in
from .treefile import Treefile


def _inside(root: Path, path: str) -> Path:
    target = root / path.lstrip("/")
    resolved = os.path.normpath(target)
    if not resolved.startswith(os.fspath(root)):
        raise LayoutError(f"{path}: outside the tree")
    return target


def add_files(root: Path, treefile: Treefile) -> None:
    for item in treefile.add_files:
        dest = _inside(root, item.dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(item.source, dest)
        os.chown(dest, 0, 0)


def remove_files(root: Path, treefile: Treefile) -> None:
    for pattern in treefile.remove_files:
        for match in glob.glob(os.fspath(_inside(root, pattern))):
            p = Path(match)
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
