"""Changes to the running system: apply-live, usroverlay."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..progress import make_reporter
from .sysroot import open_sysroot

if TYPE_CHECKING:
    from ..ostree import Sysroot


def run_apply_live(args: argparse.Namespace, sysroot: Sysroot | None = None, *,
                   target: str | None = None) -> int:
    from ..engine import live

    result = live.apply_live(sysroot or open_sysroot(args), target=target,
                             reset=getattr(args, "reset", False),
                             allow_replacement=getattr(args, "allow_replacement", False),
                             reporter=make_reporter())
    d = result.diff
    if getattr(args, "reset", False):
        print(f"Live changes reset: /usr shows the booted commit {result.commit} again.")
    else:
        print(f"Applied {result.commit} live: {len(d.added)} added, {len(d.modified)} changed, "
              f"{len(d.removed)} removed path(s) in /usr.")
    for path in result.etc_added:
        print(f"New configuration file: {path}")
    for path in result.etc_kept:
        print(f"Kept locally changed configuration file: {path}")
    return 0


def cmd_apply_live(args: argparse.Namespace) -> int:
    return run_apply_live(args, target=args.target)


def cmd_usroverlay(args: argparse.Namespace) -> int:
    from ..engine import live

    live.usroverlay(open_sysroot(args), hotfix=args.hotfix)
    if args.hotfix:
        print("Hotfix mode enabled: a writable overlay is mounted on /usr and kept across reboots; "
              "the unchanged deployment is the rollback target.")
    else:
        print("Development mode enabled: a writable overlay is mounted on /usr; "
              "all changes there are discarded at reboot.")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "apply-live", help="apply the pending deployment to the running system",
        description="Bring the running system's /usr to the pending deployment (or --target) "
                    "through a transient overlay, without a reboot. Only additions unless "
                    "--allow-replacement; new default files appear in /etc, locally changed ones "
                    "are kept; new tmpfiles.d entries are applied. A reboot drops the overlay and "
                    "boots the pending deployment. Exit 77: /usr already shows the target.")
    p.add_argument("--target", metavar="REV",
                   help="apply this commit (checksum, ref or version) instead of the pending one")
    p.add_argument("--reset", action="store_true", help="return /usr to the booted commit")
    p.add_argument("--allow-replacement", action="store_true",
                   help="also change or remove files that the running system has")
    p.set_defaults(func=cmd_apply_live)

    for name in ("usroverlay", "unlock"):
        p = sub.add_parser(
            name, help="a writable overlay on /usr (until reboot)" if name == "usroverlay"
            else "same as usroverlay",
            description="Mount a writable overlay on /usr of the booted deployment, as "
                        "'ostree admin unlock' does. Changes are discarded at reboot unless "
                        "--hotfix.")
        p.add_argument("--hotfix", action="store_true",
                       help="keep the overlay across reboots; the unchanged deployment is kept "
                            "as the rollback target")
        p.set_defaults(func=cmd_usroverlay)
