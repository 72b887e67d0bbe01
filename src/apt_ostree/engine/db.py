"""Package queries on commits: list and diff, from commit metadata."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..compose.metadata import packages_from_metadata
from ..errors import RepoError
from ..ostree import Repo
from ..packages import Package


@dataclass(frozen=True)
class Change:
    name: str
    architecture: str
    old: str
    new: str


@dataclass
class PackageDiff:
    added: list[Package] = field(default_factory=list)
    removed: list[Package] = field(default_factory=list)
    upgraded: list[Change] = field(default_factory=list)
    downgraded: list[Change] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.upgraded or self.downgraded)

    def to_json(self) -> dict[str, Any]:
        def pkg(p: Package) -> dict[str, str]:
            return {"name": p.name, "version": p.version, "architecture": p.architecture}

        def chg(c: Change) -> dict[str, str]:
            return {"name": c.name, "architecture": c.architecture,
                    "previous-version": c.old, "new-version": c.new}

        return {"added": [pkg(p) for p in self.added], "removed": [pkg(p) for p in self.removed],
                "upgraded": [chg(c) for c in self.upgraded],
                "downgraded": [chg(c) for c in self.downgraded]}


def diff_packages(old: Iterable[Package], new: Iterable[Package],
                  compare: Callable[[str, str], int]) -> PackageDiff:
    """What changed between two package sets, keyed by (name, architecture).

    Two spellings of one Debian version ("1.0" and "0:1.0") are not a change.
    """
    before = {(p.name, p.architecture): p for p in old}
    after = {(p.name, p.architecture): p for p in new}
    out = PackageDiff()
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a is None and b is not None:
            out.added.append(b)
        elif b is None and a is not None:
            out.removed.append(a)
        elif a is not None and b is not None and a.version != b.version:
            order = compare(a.version, b.version)
            if order != 0:
                change = Change(key[0], key[1], a.version, b.version)
                (out.upgraded if order < 0 else out.downgraded).append(change)
    return out


def commit_packages(repo: Repo, rev: str) -> tuple[str, list[Package]]:
    commit = repo.read_commit(rev)
    if "apt-ostree.packages" not in commit.metadata:
        raise RepoError(f"commit {commit.checksum} has no package list "
                        "(it was not composed by apt-ostree)")
    return commit.checksum, packages_from_metadata(commit.metadata)


def filter_prefixes(packages: Sequence[Package], prefixes: Sequence[str]) -> list[Package]:
    if not prefixes:
        return list(packages)
    return [p for p in packages if any(p.name.startswith(x) for x in prefixes)]
