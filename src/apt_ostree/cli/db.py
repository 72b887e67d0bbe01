"""``apt-ostree db``: the packages of commits, from their metadata."""

from __future__ import annotations

import argparse
import json
import sys

from ..apt.versions import compare_versions
from ..engine import db
from ..ostree import Repo


def cmd_list(args: argparse.Namespace) -> int:
    repo = Repo.open(args.repo)
    checksum, packages = db.commit_packages(repo, args.rev)
    packages = db.filter_prefixes(packages, args.prefixes)
    if args.json:
        json.dump({"commit": checksum, "packages": [
            {"name": p.name, "version": p.version, "architecture": p.architecture}
            for p in packages]}, sys.stdout, indent=2)
        print()
        return 0
    print(f"ostree commit: {args.rev} ({checksum})")
    for p in packages:
        print(f"  {p.name} {p.version} {p.architecture}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    repo = Repo.open(args.repo)
    old_sum, old = db.commit_packages(repo, args.from_rev)
    new_sum, new = db.commit_packages(repo, args.to_rev)
    diff = db.diff_packages(old, new, compare_versions)
    if args.json:
        out = {"from": old_sum, "to": new_sum, **diff.to_json()}
        json.dump(out, sys.stdout, indent=2)
        print()
        return 0
    print(f"ostree diff commit from: {args.from_rev} ({old_sum})")
    print(f"ostree diff commit to:   {args.to_rev} ({new_sum})")
    if diff.is_empty():
        print("No package changes.")
    for title, changes in (("Upgraded", diff.upgraded), ("Downgraded", diff.downgraded)):
        if changes:
            print(f"{title}:")
            for c in changes:
                print(f"  {c.name} {c.old} -> {c.new}")
    for title, pkgs in (("Removed", diff.removed), ("Added", diff.added)):
        if pkgs:
            print(f"{title}:")
            for p in pkgs:
                print(f"  {p.name} {p.version} {p.architecture}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dbp = sub.add_parser("db", help="query the packages of commits",
                         description="Query the package lists recorded in commit metadata.")
    dsub = dbp.add_subparsers(dest="db_command", metavar="QUERY")
    dsub.required = True
    p = dsub.add_parser("list", help="list the packages of a commit")
    p.add_argument("rev", metavar="REV", help="ref, checksum or version")
    p.add_argument("prefixes", metavar="PREFIX", nargs="*", help="only packages starting with PREFIX")
    p.add_argument("--repo", required=True, metavar="REPO")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)
    p = dsub.add_parser("diff", help="package changes between two commits")
    p.add_argument("from_rev", metavar="FROM")
    p.add_argument("to_rev", metavar="TO")
    p.add_argument("--repo", required=True, metavar="REPO")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_diff)
