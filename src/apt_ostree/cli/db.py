"""``apt-ostree db``: the packages of commits and deployments, from commit metadata.

With ``--repo`` the revisions are looked up in that repository; without it, in
the repository of the sysroot (``--sysroot DIR``, default ``/``), where the
revisions default to its deployments.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from ..engine import db
from ..errors import RepoError, UsageError
from ..ostree import Deployment, Repo, Sysroot


def resolve_rev(repo: Repo, rev: str) -> str:
    """A ref or checksum, else a version: the newest commit carrying it in some ref's history."""
    try:
        checksum = repo.resolve(rev)
    except RepoError:
        checksum = None
    if checksum:
        return checksum
    for ref in sorted(repo.refs()):
        commit: str | None = ref
        while commit:
            try:
                c = repo.read_commit(commit)
            except RepoError:
                break  # history ends here (a shallow pull)
            if c.version == rev:
                return c.checksum
            commit = c.parent
    raise RepoError(f"unknown revision {rev!r} in {repo.path}: not a ref, a commit or a version")


@dataclass(frozen=True)
class Source:
    """Where revisions are looked up: a repository and, without ``--repo``, its sysroot."""

    repo: Repo
    sysroot: Sysroot | None

    def deployments(self) -> list[Deployment]:
        deployments = self.sysroot.deployments() if self.sysroot is not None else []
        if not deployments:
            where = self.sysroot.path if self.sysroot is not None else self.repo.path
            raise RepoError(f"{where}: no deployments; name a revision")
        return deployments

    def current(self) -> tuple[str, str]:
        """The booted deployment, else the default one: (label, checksum)."""
        deployments = self.deployments()
        d = next((d for d in deployments if d.booted), deployments[0])
        return f"{'booted' if d.booted else 'default'} deployment {d.index}", d.checksum

    def diff_pair(self) -> tuple[tuple[str, str], tuple[str, str]]:
        """``db diff`` without revisions: the booted (else rollback) deployment, the default one."""
        deployments = self.deployments()
        old = next((d for d in deployments if d.booted),
                   deployments[1] if len(deployments) > 1 else deployments[0])
        label = "booted" if old.booted else ("rollback" if old.index else "default")
        new = deployments[0]
        return (f"{label} deployment {old.index}", old.checksum), (f"default deployment {new.index}",
                                                                   new.checksum)

    def is_revision(self, word: str) -> bool:
        try:
            resolve_rev(self.repo, word)
        except RepoError:
            return False
        return True


def open_source(args: argparse.Namespace) -> Source:
    if args.repo:
        return Source(Repo.open(args.repo), None)
    sysroot = Sysroot.open(args.sysroot or "/")
    return Source(sysroot.repo(), sysroot)


def cmd_list(args: argparse.Namespace) -> int:
    source = open_source(args)
    words = list(args.words)
    if source.sysroot is None or (words and source.is_revision(words[0])):
        if not words:
            raise UsageError("db list: name a revision (with --repo there are no deployments)")
        label = words.pop(0)
        checksum = resolve_rev(source.repo, label)
    else:  # rpm-ostree: without a revision, the booted (else the default) deployment
        label, checksum = source.current()
    checksum, packages = db.commit_packages(source.repo, checksum)
    packages = db.filter_prefixes(packages, words)
    if args.json:
        json.dump({"commit": checksum, "packages": [
            {"name": p.name, "version": p.version, "architecture": p.architecture}
            for p in packages]}, sys.stdout, indent=2)
        print()
        return 0
    print(f"ostree commit: {label} ({checksum})")
    for p in packages:
        print(f"  {p.name} {p.version} {p.architecture}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    source = open_source(args)
    revs = [r for r in (args.from_rev, args.to_rev) if r is not None]
    if source.sysroot is None and len(revs) != 2:
        raise UsageError("db diff: name two revisions (with --repo there are no deployments)")
    if not revs:
        (from_label, from_sum), (to_label, to_sum) = source.diff_pair()
    elif len(revs) == 1:  # from the booted (else the default) deployment to REV
        (from_label, from_sum), to_label = source.current(), revs[0]
        to_sum = resolve_rev(source.repo, revs[0])
    else:
        from_label, to_label = revs
        from_sum, to_sum = resolve_rev(source.repo, revs[0]), resolve_rev(source.repo, revs[1])
    old_sum, old = db.commit_packages(source.repo, from_sum)
    new_sum, new = db.commit_packages(source.repo, to_sum)
    from ..apt.versions import compare_versions  # python-apt: only when diffing
    diff = db.diff_packages(old, new, compare_versions)
    if args.json:
        out = {"from": old_sum, "to": new_sum, **diff.to_json()}
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(f"ostree diff commit from: {from_label} ({old_sum})")
    print(f"ostree diff commit to:   {to_label} ({new_sum})")
    from .sysroot import print_diff

    print_diff(diff, architectures=True)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dbp = sub.add_parser("db", help="query the packages of commits and deployments",
                         description="Query the package lists recorded in commit metadata. Without "
                                     "--repo, revisions are looked up in the repository of the "
                                     "sysroot (--sysroot, default /) and default to its deployments.")
    dsub = dbp.add_subparsers(dest="db_command", metavar="QUERY")
    dsub.required = True
    p = dsub.add_parser("list", help="list the packages of a commit or deployment",
                        usage="%(prog)s [-h] [--repo REPO] [--json] [REV] [PREFIX ...]",
                        description="Without --repo, REV defaults to the booted (else the default) "
                                    "deployment; a first word that is not a revision is a prefix.")
    p.add_argument("words", metavar="REV PREFIX", nargs="*",
                   help="ref, checksum or version, then package name prefixes")
    p.add_argument("--repo", metavar="REPO", help="an OSTree repository (default: the sysroot's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    p = dsub.add_parser("diff", help="package changes between two commits or deployments",
                        description="Without revisions: from the booted (else the rollback) "
                                    "deployment to the default one. With one: from the booted "
                                    "(else the default) deployment to REV.")
    p.add_argument("from_rev", metavar="FROM", nargs="?")
    p.add_argument("to_rev", metavar="TO", nargs="?")
    p.add_argument("--repo", metavar="REPO", help="an OSTree repository (default: the sysroot's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_diff)
