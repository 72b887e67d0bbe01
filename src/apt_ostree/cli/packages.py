"""Package layering commands: install, uninstall."""

from __future__ import annotations

import argparse

from ..engine import layer
from ..progress import LineReporter
from .sysroot import open_sysroot


def cmd_install(args: argparse.Namespace) -> int:
    result = layer.change_packages(open_sysroot(args), install=args.packages,
                                   idempotent=args.idempotent, cache_only=args.cache_only,
                                   reporter=LineReporter())
    for name in result.plan.inactive:
        print(f"Inactive request: {name} is already provided by the base")
    if result.plan.install:
        print("Added: " + ", ".join(f"{p.name} {p.version}" for p in result.plan.install))
    print(f"Deployed {result.checksum}; reboot (or 'apt-ostree rollback') to switch.")
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    result = layer.change_packages(open_sysroot(args), uninstall=args.packages,
                                   uninstall_all=args.all, cache_only=args.cache_only,
                                   reporter=LineReporter())
    print(f"Deployed {result.checksum}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("install", help="layer packages on the base as a new deployment",
                       description="Resolve PKG against the deployment's own package database "
                                   "and apt sources, install it in a sandbox on top of the base "
                                   "and deploy the result as the new default.")
    p.add_argument("packages", nargs="+", metavar="PKG")
    p.add_argument("--idempotent", action="store_true",
                   help="succeed without change if already requested")
    p.add_argument("-C", "--cache-only", action="store_true",
                   help="do not update the package lists")
    p.set_defaults(func=cmd_install)
    p = sub.add_parser("uninstall", help="remove layered packages (as a new deployment)")
    p.add_argument("packages", nargs="*", metavar="PKG")
    p.add_argument("--all", action="store_true", help="remove every layered package")
    p.add_argument("-C", "--cache-only", action="store_true",
                   help="do not update the package lists")
    p.set_defaults(func=cmd_uninstall)
