"""The command line: argument parsing, dispatch and the one top-level error handler.

Each command group is a module with ``register(subparsers)``; a command is a
function ``(args) -> int``.  Printing happens here and in the group modules
only.
"""

from __future__ import annotations

import sys

STATUS_FLAGS = {"--json": "json", "-v": "verbose", "--verbose": "verbose",
                "-b": "booted", "--booted": "booted"}


def cached_status(argv: list[str]) -> bool:
    """``[--sysroot DIR] status [--json] [-v] [-b]`` from the status cache, if it is fresh.

    Imports nothing heavy: a status with nothing changed is as quick as ostree's.
    """
    from .. import statuscache

    sysroot, flags, rest = None, {"json": False, "verbose": False, "booted": False}, list(argv)
    if rest[:1] == ["--sysroot"] and len(rest) > 1:
        sysroot, rest = rest[1], rest[2:]
    elif rest[:1] and rest[0].startswith("--sysroot="):
        sysroot, rest = rest[0].split("=", 1)[1], rest[1:]
    if rest[:1] != ["status"] or any(a not in STATUS_FLAGS for a in rest[1:]):
        return False
    for a in rest[1:]:
        flags[STATUS_FLAGS[a]] = True
    if sysroot is None:
        # Through the daemon, with the standard library only; on any trouble
        # the full client explains (or activates the daemon).
        import json

        from .. import dbuswire

        try:
            text = dbuswire.call_string_method("org.aptostree1", "/org/aptostree1/Sysroot",
                                               "org.aptostree1.Sysroot", "GetStatus")
            data, json_text = json.loads(text), None
        except (dbuswire.WireError, OSError, ValueError):
            return False
    else:
        cached = statuscache.load(sysroot)
        if cached is None:
            return False
        data, json_text = cached
    from .statusview import print_status

    try:
        print_status(data, as_json=flags["json"], verbose=flags["verbose"],
                     booted_only=flags["booted"], json_text=json_text)
    except BrokenPipeError:
        pass
    return True


def main(argv: list[str] | None = None) -> int:
    if cached_status(sys.argv[1:] if argv is None else argv):
        return 0
    import logging
    import traceback

    from ..errors import AptOstreeError
    from .parser import build_parser

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s: %(name)s: %(message)s")
    try:
        if args.sysroot is None:
            from ..daemon.verbs import verb_for_args

            verb = verb_for_args(args)
            if verb is not None:
                from .client import run_transaction

                return run_transaction(args, verb)
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
