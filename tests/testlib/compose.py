"""Compose trees from tests through the real CLI, and describe the result."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .tools import OstreeCli, Treefile, run_cli, write_treefile

# SOURCE_DATE_EPOCH of the reproducible composes (2025-01-01): automatic
# versions of those commits are 20250101.N.
REPRO_EPOCH = "1735689600"


@dataclass(frozen=True)
class ComposedTree:
    """A commit composed by ``apt-ostree compose tree`` (and how it was made)."""

    repo: Path
    treefile: Treefile
    commit: str
    lockfile: Path
    proc: subprocess.CompletedProcess[str]

    @property
    def ref(self) -> str:
        return self.treefile.ref

    @property
    def ostree(self) -> OstreeCli:
        return OstreeCli(self.repo)


def compose_deployable(top: Path, ref: str, packages: Sequence[str], extra_sources: Sequence[str],
                       cachedir: Path) -> ComposedTree:
    """Compose ``ref`` (version 1) from this machine's sources + ``extra_sources`` with a text
    kernel, so that it can be deployed; in ``top``."""
    (top / "vmlinuz").write_text("text kernel\n")
    tf = write_treefile(top / "tree.yaml", {
        "ref": ref, "version": "1", "packages": list(packages),
        "add-files": [["vmlinuz", "/usr/lib/modules/6.1.0-test/vmlinuz"]],
    }, extra_sources=extra_sources)
    return compose_ok(tf, top / "repo", cachedir, top / "work")


def compose_tree(treefile: Treefile, repo: Path, cachedir: Path, *args: str | os.PathLike[str],
                 env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("compose", "tree", treefile.path, "--repo", repo, "--cachedir", cachedir,
                   *args, env=env)


def compose_ok(treefile: Treefile, repo: Path, cachedir: Path, workdir: Path,
               extra_args: Sequence[str | os.PathLike[str]] = (),
               env: Mapping[str, str] | None = None) -> ComposedTree:
    """Compose and insist that it worked; records the commit and the lockfile."""
    workdir.mkdir(parents=True, exist_ok=True)
    lockfile = workdir.parent / f"{workdir.name}.lock.json"
    commitid = workdir.parent / f"{workdir.name}.commitid"
    proc = compose_tree(treefile, repo, cachedir, "--workdir", workdir,
                        "--write-lockfile-to", lockfile, "--write-commitid-to", commitid,
                        *extra_args, env=env)
    assert proc.returncode == 0, f"compose failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    commit = commitid.read_text().strip()
    return ComposedTree(repo=repo, treefile=treefile, commit=commit, lockfile=lockfile, proc=proc)
