"""The argument parser: every command group registers its commands here."""

from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from . import compose, db, live, packages, sysroot

    parser = Parser(
        prog="apt-ostree",
        description="Atomic, image-based Debian systems on OSTree, with package layering.",
    )
    parser.add_argument("--version", action="version", version=f"apt-ostree {__version__}")
    parser.add_argument("--debug", action="store_true", help="show debug logging and tracebacks")
    parser.add_argument("--sysroot", metavar="DIR", default=None,
                        help="operate on the sysroot at DIR in-process, without the daemon")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    compose.register(sub)
    db.register(sub)
    sysroot.register(sub)
    packages.register(sub)
    live.register(sub)
    return parser
