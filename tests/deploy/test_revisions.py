"""Which commit ``deploy REVISION`` picks (no sysroot needed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from apt_ostree.engine.deploy import find_revision
from apt_ostree.errors import RepoError
from apt_ostree.ostree import Commit, Repo


class History:
    """A stand-in for ``Repo.history``: newest first."""

    def __init__(self, *commits: tuple[str, str | None]) -> None:
        self.commits = [Commit(checksum=c * 64 if len(c) == 1 else c.ljust(64, "0"), parent=None,
                               subject="", timestamp=0,
                               metadata={"version": v} if v else {}) for c, v in commits]

    def history(self, refspec: str) -> Iterator[Commit]:
        return iter(self.commits)


def find(history: History, revision: str) -> str:
    return find_revision(cast(Repo, history), "r", revision)


def test_version_wins_over_a_checksum_prefix() -> None:
    repo = History(("2025", "3"), ("abcd", "20250101"))
    assert find(repo, "20250101") == repo.commits[1].checksum
    assert find(repo, "2025") == repo.commits[0].checksum


def test_checksum_full_and_prefix() -> None:
    repo = History(("abcd1", "2.0"), ("abcd2", "1.0"))
    second = repo.commits[1].checksum
    assert find(repo, second) == second
    assert find(repo, "ABCD2") == second
    assert find(repo, "1.0") == second
    with pytest.raises(RepoError, match="ambiguous"):
        find(repo, "abcd")
    with pytest.raises(RepoError, match="not found"):
        find(repo, "abc")  # too short to be a prefix


def test_newest_commit_with_a_version() -> None:
    repo = History(("a", "1.0"), ("b", "1.0"))
    assert find(repo, "1.0") == "a" * 64
