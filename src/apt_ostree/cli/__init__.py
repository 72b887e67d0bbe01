"""The command line: argument parsing, dispatch and the one top-level error handler.

Each command group is a module with ``register(subparsers)``; a command is a
function ``(args) -> int``.  Printing happens here and in the group modules
only.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence

from .. import __version__
from ..errors import AptOstreeError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    from . import compose, db, packages, sysroot

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s: %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except AptOstreeError as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {e.message}" if e.exit_code != 77 else e.message, file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
