"""The mutating verbs the daemon serves: one table for the bus API, the CLI client
and the command line the daemon's transaction runs.

Each verb is an ``OS`` method taking its positional arguments and an ``a{sv}``
of options (so the API can grow); the options are the CLI's long options.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Kind(enum.Enum):
    FLAG = "b"
    STRING = "s"
    STRINGS = "as"
    INT = "i"


@dataclass(frozen=True)
class Verb:
    method: str                       # the D-Bus method on org.aptostree1.OS
    argv: tuple[str, ...]             # the command line it runs ("override", "remove")
    positional: str | None = None     # option key carrying the positional argument(s)
    positional_kind: Kind = Kind.STRINGS
    options: Mapping[str, Kind] = field(default_factory=dict)
    polkit_action: str = ""
    # Changes the running system's mounts (/usr overlays): the transaction runs in
    # the system's mount namespace, not in one of its own.
    live: bool = False


LAYER = {"dry-run": Kind.FLAG, "cache-only": Kind.FLAG, "assumeyes": Kind.FLAG}
PKG = {"install": Kind.STRINGS, "uninstall": Kind.STRINGS}

VERBS: dict[str, Verb] = {v.method: v for v in (
    Verb("Upgrade", ("upgrade",), options={"check": Kind.FLAG, "preview": Kind.FLAG,
                                           "allow-downgrade": Kind.FLAG, **PKG},
         polkit_action="org.aptostree1.upgrade"),
    Verb("Deploy", ("deploy",), "revision", Kind.STRING, PKG, "org.aptostree1.deploy"),
    Verb("Rebase", ("rebase",), "refspec", Kind.STRING, PKG, "org.aptostree1.rebase"),
    Verb("Rollback", ("rollback",), polkit_action="org.aptostree1.rollback"),
    Verb("Cleanup", ("cleanup",), options={"pending": Kind.FLAG, "rollback": Kind.FLAG,
                                           "base": Kind.FLAG, "repomd": Kind.FLAG},
         polkit_action="org.aptostree1.cleanup"),
    Verb("KernelArgs", ("kargs",), options={k: Kind.STRINGS for k in (
        "append", "append-if-missing", "delete", "delete-if-present", "replace")},
        polkit_action="org.aptostree1.kargs"),
    Verb("Pin", ("pin",), "index", Kind.INT, polkit_action="org.aptostree1.pin"),
    Verb("Unpin", ("unpin",), "index", Kind.INT, polkit_action="org.aptostree1.pin"),
    Verb("Install", ("install",), "packages", Kind.STRINGS,
         {**LAYER, "idempotent": Kind.FLAG, "allow-inactive": Kind.FLAG, "download-only": Kind.FLAG},
         "org.aptostree1.install-uninstall-packages"),
    Verb("InstallApplyLive", ("install", "--apply-live"), "packages", Kind.STRINGS,
         {**LAYER, "idempotent": Kind.FLAG, "allow-inactive": Kind.FLAG},
         "org.aptostree1.apply-live", live=True),
    Verb("ApplyLive", ("apply-live",), options={"target": Kind.STRING, "reset": Kind.FLAG,
                                                "allow-replacement": Kind.FLAG},
         polkit_action="org.aptostree1.apply-live", live=True),
    Verb("Usroverlay", ("usroverlay",), options={"hotfix": Kind.FLAG},
         polkit_action="org.aptostree1.usroverlay", live=True),
    Verb("Uninstall", ("uninstall",), "packages", Kind.STRINGS, {**LAYER, "all": Kind.FLAG},
         "org.aptostree1.install-uninstall-packages"),
    Verb("OverrideRemove", ("override", "remove"), "packages", Kind.STRINGS, LAYER,
         "org.aptostree1.override"),
    Verb("OverrideReplace", ("override", "replace"), "packages", Kind.STRINGS, LAYER,
         "org.aptostree1.override"),
    Verb("OverrideReset", ("override", "reset"), "packages", Kind.STRINGS, {**LAYER, "all": Kind.FLAG},
         "org.aptostree1.override"),
    Verb("Reset", ("reset",), options=LAYER, polkit_action="org.aptostree1.reset"),
    Verb("RefreshMd", ("refresh-md",), polkit_action="org.aptostree1.refresh-md"),
)}

# CLI command -> verb (override's subcommands are looked up by both words).
BY_COMMAND = {" ".join(v.argv): v for v in VERBS.values()}


def verb_for_args(args: argparse.Namespace) -> Verb | None:
    command = args.command
    if command == "override":
        command = f"override {args.override_command}"
    elif command == "install" and getattr(args, "apply_live", False):
        command = "install --apply-live"
    elif command == "unlock":
        command = "usroverlay"
    return BY_COMMAND.get(command)


def _dest(key: str) -> str:
    return key.replace("-", "_")


def options_from_args(verb: Verb, args: argparse.Namespace) -> dict[str, Any]:
    """The a{sv} (as plain values) for a parsed command line."""
    out: dict[str, Any] = {}
    for key, kind in verb.options.items():
        value = getattr(args, _dest(key), None)
        if kind is Kind.FLAG and value:
            out[key] = True
        elif kind is Kind.STRINGS and value:
            out[key] = [str(v) for v in value]
        elif kind in (Kind.STRING, Kind.INT) and value is not None:
            out[key] = value
    return out


def positional_from_args(verb: Verb, args: argparse.Namespace) -> Any:
    if verb.positional is None:
        return None
    value = getattr(args, _dest(verb.positional))
    if verb.positional == "packages":
        # Local .deb files travel as absolute paths: the daemon has another cwd.
        import os

        value = [os.path.abspath(v) if v.endswith(".deb") and os.path.exists(v) else v
                 for v in value or []]
    return value


def argv_for(verb: Verb, positional: Any, options: Mapping[str, Any]) -> list[str]:
    """The command line (after ``--sysroot DIR``) a transaction of ``verb`` runs."""
    unknown = sorted(set(options) - set(verb.options))
    if unknown:
        from ..errors import UsageError

        raise UsageError(f"{verb.method}: unknown option{'s' if len(unknown) > 1 else ''}: "
                         f"{', '.join(unknown)}")
    argv = list(verb.argv)
    for key, kind in verb.options.items():
        value = options.get(key)
        if value is None or value is False:
            continue
        if kind is Kind.FLAG:
            argv.append(f"--{key}")
        elif kind is Kind.STRINGS:  # --key=VALUE: a value may start with '-'
            argv += [f"--{key}={item}" for item in value]
        else:
            argv.append(f"--{key}={value}")
    if verb.positional is not None:
        if verb.positional_kind is Kind.STRINGS:
            argv += ["--", *[str(v) for v in positional or []]]
        elif positional is not None and positional != "":
            argv += ["--", str(positional)]
    return argv


def describe(verb: Verb, positional: Any) -> str:
    """A title for the transaction: 'install htop', 'deploy 1.0', 'upgrade'."""
    words = list(verb.argv)
    if isinstance(positional, Sequence) and not isinstance(positional, str):
        words += [str(p) for p in positional]
    elif positional not in (None, ""):
        words.append(str(positional))
    return " ".join(words)
