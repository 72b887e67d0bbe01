"""Commands on a sysroot: admin init, status, upgrade, deploy, rebase, rollback,
cleanup, kargs, pin/unpin."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engine import deploy, status
from ..engine.db import PackageDiff
from ..ostree import Sysroot
from ..progress import make_reporter
from .statusview import print_status


def open_sysroot(args: argparse.Namespace) -> Sysroot:
    return Sysroot.open(args.sysroot or "/")


def print_staged_note(sysroot: Sysroot) -> bool:
    """On a booted system the new deployment is staged: say when it takes effect (True if so)."""
    staged = next((d for d in sysroot.deployments() if d.staged), None)
    if staged is not None:
        print(f"Staged {staged.checksum[:12]}.{staged.serial}: it becomes the default at the next "
              "reboot (finalized at shutdown; 'apt-ostree cleanup -p' drops it).")
    return staged is not None


def print_diff(diff: PackageDiff, *, architectures: bool = False) -> None:
    """A package diff as rpm-ostree prints it (also used by ``db diff``)."""
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
                print(f"  {p.name} {p.version}" + (f" {p.architecture}" if architectures else ""))


def cmd_status(args: argparse.Namespace) -> int:
    if args.sysroot is None:
        from .client import status_via_daemon

        data = status_via_daemon()
    else:
        data = status.status(open_sysroot(args))
    print_status(data, as_json=args.json, verbose=args.verbose, booted_only=args.booted)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    deploy.require_root("admin init")
    d = deploy.admin_init(Path(args.dir), args.repo, args.ref, osname=args.os,
                          kargs=args.karg or [], reporter=make_reporter())
    print(f"Deployed {d.osname}:{args.ref} ({d.checksum}) into {args.dir}")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    sysroot = open_sysroot(args)
    result = deploy.upgrade(sysroot, check=args.check, preview=args.preview,
                            allow_downgrade=args.allow_downgrade, install=args.install or (),
                            uninstall=args.uninstall or (), reporter=make_reporter())
    if not result.deployed:
        print(f"Update available: {result.checksum}" +
              (f" (version {result.version})" if result.version else ""))
        if result.diff is not None:
            print_diff(result.diff)
        return 0
    if result.checksum == result.previous:
        print(f"No new base ({result.checksum[:12]}); the package changes are deployed.")
    else:
        print(f"Upgraded to {result.checksum}" + (f" (version {result.version})" if result.version else ""))
    if result.diff is not None:
        print_diff(result.diff)
    print_staged_note(sysroot)
    print("Run 'apt-ostree rollback' to go back to the previous deployment.")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    sysroot = open_sysroot(args)
    checksum = deploy.deploy_revision(sysroot, args.revision, make_reporter(),
                                      install=args.install or (), uninstall=args.uninstall or ())
    print(f"Deployed {checksum}")
    print_staged_note(sysroot)
    return 0


def cmd_rebase(args: argparse.Namespace) -> int:
    sysroot = open_sysroot(args)
    checksum = deploy.rebase(sysroot, args.refspec, make_reporter(),
                             install=args.install or (), uninstall=args.uninstall or ())
    print(f"Rebased to {args.refspec} ({checksum})")
    print_staged_note(sysroot)
    return 0


def cmd_transaction(args: argparse.Namespace) -> int:
    from .client import watch_active

    return watch_active()


def cmd_rollback(args: argparse.Namespace) -> int:
    sysroot = open_sysroot(args)
    staged = next((d for d in sysroot.deployments() if d.staged), None)
    new_default, previous = deploy.rollback(sysroot)
    print(f"Moving {new_default.checksum[:12]}.{new_default.serial} to be the default deployment; "
          f"{previous.checksum[:12]}.{previous.serial} is now the rollback")
    if staged is not None and not any(d.staged for d in sysroot.deployments()):
        print(f"Dropped the staged deployment {staged.checksum[:12]}.{staged.serial}.")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    if not (args.pending or args.rollback or args.base or args.repomd):
        from ..errors import UsageError
        raise UsageError("cleanup: choose at least one of -p, -r, -b, -m")
    removed = deploy.cleanup(open_sysroot(args), pending=args.pending, rollback=args.rollback,
                             base=args.base, metadata=args.repomd)
    for item in removed:
        print(f"Removed {item}")
    if not removed:
        print("Nothing to remove; unreferenced objects pruned.")
    return 0


def cmd_kargs(args: argparse.Namespace) -> int:
    change = deploy.KargsChange(
        append=tuple(args.append or ()), append_if_missing=tuple(args.append_if_missing or ()),
        delete=tuple(args.delete or ()), delete_if_present=tuple(args.delete_if_present or ()),
        replace=tuple(args.replace or ()))
    sysroot = open_sysroot(args)
    if change.is_empty():
        print(" ".join(deploy.current_kargs(sysroot)))
        return 0
    after = deploy.kargs(sysroot, change, make_reporter())
    print(f"Kernel arguments updated: {' '.join(after)}")
    print_staged_note(sysroot)
    return 0


def cmd_pin(args: argparse.Namespace) -> int:
    d = deploy.set_pinned(open_sysroot(args), args.index, args.pin)
    print(f"Deployment {args.index} ({d.id}) is now {'pinned' if d.pinned else 'unpinned'}")
    return 0


def _package_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--install", action="append", metavar="PKG",
                   help="also layer PKG (repeatable)")
    p.add_argument("--uninstall", action="append", metavar="PKG",
                   help="also remove the layered PKG (repeatable)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    admin = sub.add_parser("admin", help="set up sysroots")
    asub = admin.add_subparsers(dest="admin_command", metavar="COMMAND")
    asub.required = True
    p = asub.add_parser("init", help="create a sysroot in DIR and deploy REF from REPO",
                        description="Create an OSTree sysroot in DIR, add a remote pointing at "
                                    "REPO (a path or URL), pull REF and deploy it.")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--repo", required=True, help="OSTree repository: a path or an http(s) URL")
    p.add_argument("--ref", required=True, help="the ref to deploy")
    p.add_argument("--os", metavar="NAME", help="stateroot name (default: the tree's os-release ID)")
    p.add_argument("--karg", action="append", metavar="ARG", help="kernel argument (repeatable)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("status", help="show the deployments")
    p.add_argument("--json", action="store_true", help="machine-readable output (see README)")
    p.add_argument("-v", "--verbose", action="store_true", help="more detail")
    p.add_argument("-b", "--booted", action="store_true", help="only the booted deployment")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("upgrade", help="deploy the newest commit of the origin's ref",
                       description="Pull the newest commit of the origin's ref and deploy it as the "
                                   "new default; the former default stays as rollback. Exit 77: "
                                   "no update.")
    p.add_argument("--check", action="store_true", help="only say whether an update is available")
    p.add_argument("--preview", action="store_true", help="like --check, and show the package diff")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="deploy the ref's commit even if it is older than the deployed one")
    _package_options(p)
    p.set_defaults(func=cmd_upgrade)

    p = sub.add_parser("deploy", help="deploy a commit of the origin's ref by checksum or version")
    p.add_argument("revision", metavar="REVISION")
    _package_options(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("rebase", help="follow another ref (REMOTE:REF or REF)")
    p.add_argument("refspec", metavar="REFSPEC")
    _package_options(p)
    p.set_defaults(func=cmd_rebase)

    p = sub.add_parser("transaction", help="watch the daemon's active transaction",
                       description="Attach to the transaction apt-ostreed is running and show its "
                                   "progress until it ends; exits with its exit code.")
    p.add_argument("action", choices=["watch"], nargs="?", default="watch")
    p.set_defaults(func=cmd_transaction)

    p = sub.add_parser("rollback", help="make the previous deployment the default again")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("cleanup", help="remove deployments, refs and cached data")
    p.add_argument("-p", "--pending", action="store_true", help="remove the pending deployment")
    p.add_argument("-r", "--rollback", action="store_true", help="remove the rollback deployment")
    p.add_argument("-b", "--base", action="store_true", help="remove unused layering base refs")
    p.add_argument("-m", "--repomd", action="store_true", help="remove cached package metadata")
    p.set_defaults(func=cmd_cleanup)

    p = sub.add_parser("kargs", help="show or change kernel arguments (as a new deployment)")
    p.add_argument("--append", action="append", metavar="KEY=VALUE")
    p.add_argument("--append-if-missing", action="append", metavar="KEY=VALUE")
    p.add_argument("--delete", action="append", metavar="KEY[=VALUE]")
    p.add_argument("--delete-if-present", action="append", metavar="KEY[=VALUE]")
    p.add_argument("--replace", action="append", metavar="KEY=VALUE|KEY=OLD=NEW")
    p.set_defaults(func=cmd_kargs)

    p = sub.add_parser("pin", help="keep a deployment (by index) from being garbage collected")
    p.add_argument("index", type=int, metavar="INDEX")
    p.set_defaults(func=cmd_pin, pin=True)
    p = sub.add_parser("unpin", help="release a pinned deployment")
    p.add_argument("index", type=int, metavar="INDEX")
    p.set_defaults(func=cmd_pin, pin=False)
