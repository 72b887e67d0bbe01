"""Package layering commands: install, uninstall, override, reset, refresh-md, search."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..progress import make_reporter
from .sysroot import open_sysroot, print_staged_note

if TYPE_CHECKING:
    from ..engine.layer import LayeringChange, LayerResult
    from ..ostree import Sysroot


def print_plan(result: LayerResult, *, dry_run: bool = False) -> None:
    plan = result.plan
    for name in plan.inactive:
        print(f"Inactive request: {name} (already provided by the base)")
    verb = "Would install" if dry_run else "Installed"
    new = [p for p in plan.install if p.name not in {b.name for b, _ in plan.replaced}]
    if new or plan.local:
        print(f"{verb}: " + ", ".join([f"{p.name} {p.version}" for p in new] +
                                      [f"{d.name} {d.version} (local)" for d in plan.local
                                       if d.name not in {b.name for b, _ in plan.replaced}]))
    for base, repl in plan.replaced:
        print(f"{'Would replace' if dry_run else 'Replaced'}: {base.name} {base.version} -> {repl.version}")
    if plan.remove:
        print(f"{'Would remove' if dry_run else 'Removed'}: {', '.join(plan.remove)}")


def _run(args: argparse.Namespace, change: LayeringChange, sysroot: Sysroot | None = None) -> int:
    from ..engine import layer

    dry_run = getattr(args, "dry_run", False)
    download_only = getattr(args, "download_only", False)
    sysroot = sysroot or open_sysroot(args)
    result = layer.change_layering(
        sysroot, change, idempotent=getattr(args, "idempotent", False),
        allow_inactive=getattr(args, "allow_inactive", False),
        cache_only=getattr(args, "cache_only", False), dry_run=dry_run,
        download_only=download_only, reporter=make_reporter())
    print_plan(result, dry_run=dry_run)
    if dry_run:
        print("Dry run: nothing deployed.")
    elif download_only:
        print("Packages downloaded; nothing deployed.")
    else:
        if not print_staged_note(sysroot):
            print(f"Deployed {result.checksum} as the new default; "
                  "reboot into it, or 'apt-ostree rollback' to undo.")
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from ..engine.layer import LayeringChange

    if args.apply_live and (args.dry_run or args.download_only):
        from ..errors import UsageError
        raise UsageError("install: --apply-live deploys; it excludes --dry-run and --download-only")
    sysroot = open_sysroot(args)
    if args.apply_live:
        from ..engine.live import booted_deployment

        booted_deployment(sysroot, "install --apply-live")  # fail before any work
    code = _run(args, LayeringChange(install=tuple(args.packages)), sysroot)
    if args.apply_live:
        from .live import run_apply_live

        return run_apply_live(args, sysroot)
    return code


def cmd_uninstall(args: argparse.Namespace) -> int:
    from ..engine.layer import LayeringChange

    if not args.packages and not args.all:
        from ..errors import UsageError
        raise UsageError("uninstall: name packages or use --all")
    return _run(args, LayeringChange(uninstall=tuple(args.packages), uninstall_all=args.all))


def cmd_override(args: argparse.Namespace) -> int:
    from ..engine.layer import LayeringChange

    if args.override_command == "remove":
        return _run(args, LayeringChange(remove=tuple(args.packages)))
    if args.override_command == "replace":
        return _run(args, LayeringChange(replace=tuple(args.packages)))
    if not args.packages and not args.all:
        from ..errors import UsageError
        raise UsageError("override reset: name packages or use --all")
    return _run(args, LayeringChange(reset_overrides=tuple(args.packages),
                                     reset_all_overrides=args.all))


def cmd_reset(args: argparse.Namespace) -> int:
    from ..engine.layer import LayeringChange

    return _run(args, LayeringChange(reset_all=True))


def cmd_refresh_md(args: argparse.Namespace) -> int:
    from ..engine import layer

    layer.refresh_metadata(open_sysroot(args), make_reporter())
    print("Package lists updated.")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from ..engine import layer

    hits = layer.search(open_sysroot(args), args.terms)
    for name, version, summary in hits:
        print(f"{name} {version}: {summary}")
    if not hits:
        print("No matches.")
    return 0


def _common(p: argparse.ArgumentParser, *, dry_run: bool = True) -> None:
    if dry_run:
        p.add_argument("-n", "--dry-run", action="store_true", help="show what would change; deploy nothing")
    p.add_argument("-y", "--assumeyes", action="store_true", help="do not ask (there are no prompts)")
    p.add_argument("-C", "--cache-only", action="store_true", help="do not update the package lists")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("install", help="layer packages on the base (a new deployment)",
                       description="Resolve packages against the deployment's own package database "
                                   "and apt sources, install them in a sandbox on top of the base "
                                   "and deploy the result as the new default. PKG may be a name or "
                                   "a path to a .deb file.")
    p.add_argument("packages", nargs="+", metavar="PKG|./FILE.deb")
    _common(p)
    p.add_argument("--idempotent", action="store_true", help="succeed without change if already requested")
    p.add_argument("--allow-inactive", action="store_true",
                   help="record the request even if the base already has the package")
    p.add_argument("--download-only", action="store_true", help="only download the packages")
    p.add_argument("-A", "--apply-live", action="store_true",
                   help="also apply the new deployment to the running system (see apply-live)")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("uninstall", help="remove layered packages (a new deployment)")
    p.add_argument("packages", nargs="*", metavar="PKG")
    p.add_argument("--all", action="store_true", help="remove every layered package")
    _common(p)
    p.set_defaults(func=cmd_uninstall)

    ov = sub.add_parser("override", help="remove or replace base packages",
                        description="Change packages of the base explicitly (a new deployment).")
    osub = ov.add_subparsers(dest="override_command", metavar="COMMAND")
    osub.required = True
    p = osub.add_parser("remove", help="remove base packages")
    p.add_argument("packages", nargs="+", metavar="PKG")
    _common(p)
    p.set_defaults(func=cmd_override)
    p = osub.add_parser("replace", help="replace base packages by a local .deb or another version")
    p.add_argument("packages", nargs="+", metavar="./FILE.deb|PKG=VERSION")
    _common(p)
    p.set_defaults(func=cmd_override)
    p = osub.add_parser("reset", help="drop overrides (back to the base's packages)")
    p.add_argument("packages", nargs="*", metavar="PKG")
    p.add_argument("--all", action="store_true", help="drop every override")
    _common(p)
    p.set_defaults(func=cmd_override)

    p = sub.add_parser("reset", help="drop all layered packages and overrides (a new deployment)")
    _common(p)
    p.set_defaults(func=cmd_reset)

    p = sub.add_parser("refresh-md", help="update the package lists of the deployment's sources")
    p.set_defaults(func=cmd_refresh_md)

    p = sub.add_parser("search", help="search the packages of the deployment's sources")
    p.add_argument("terms", nargs="+", metavar="TERM")
    p.set_defaults(func=cmd_search)
