"""The CLI as a client of apt-ostreed: the same commands, output and exit codes.

Without ``--sysroot`` a mutating command becomes a transaction of the daemon
on the system bus: this module submits it, shows its progress (a one-line
bar on a terminal, plain lines otherwise), cancels it on Ctrl-C and prints
its output and result.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from ..daemon.verbs import Kind, Verb, options_from_args, positional_from_args
from ..errors import AptOstreeError, DaemonError

BUS_NAME = "org.aptostree1"
SYSROOT_PATH = "/org/aptostree1/Sysroot"


class Progress:
    """Task lines like direct mode; on a terminal, one line rewritten in place."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started: dict[str, float] = {}
        self.done = 0

    def _line(self, text: str, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def task_begin(self, title: str) -> None:
        self.started[title] = time.monotonic()
        self._line(f"[{self.done + 1}] {title}..." if self.tty else f"{title}...", final=False)

    def task_end(self, title: str) -> None:
        self.done += 1
        seconds = time.monotonic() - self.started.pop(title, time.monotonic())
        self._line(f"{title}... done ({seconds:.1f}s)", final=True)

    def message(self, text: str) -> None:
        self._line(text, final=True)


def _variant(kind: Kind, value: Any) -> Any:
    from dasbus.typing import Bool, Int, List, Str, get_variant  # type: ignore[import-untyped]

    return get_variant({Kind.FLAG: Bool, Kind.STRING: Str, Kind.STRINGS: List[Str], Kind.INT: Int}[kind],
                       value)


def _bus() -> Any:
    from dasbus.connection import SystemMessageBus  # type: ignore[import-untyped]

    try:
        bus = SystemMessageBus()
        bus.connection  # noqa: B018  (connects now, so a missing bus fails here)
    except Exception as e:
        import os

        address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket")
        raise DaemonError(f"cannot reach the system bus ({address}): {getattr(e, 'message', None) or e}",
                          hint="use --sysroot DIR to work on a sysroot without the daemon") from e
    return bus


def _call(what: str, call: Callable[[], Any]) -> Any:
    """``call()``, which uses a proxy: a proxy looks the object up (introspects it)
    when its first member is used, so that use must happen in here too."""
    from dasbus.error import DBusError  # type: ignore[import-untyped]
    from gi.repository import GLib

    try:
        return call()
    except (DBusError, GLib.Error) as e:
        message = getattr(e, "message", None) or str(e)
        if "org.freedesktop.DBus.Error.ServiceUnknown" in message or "was not provided" in message:
            raise DaemonError("apt-ostreed is not running and cannot be activated",
                              hint="start apt-ostreed, or use --sysroot DIR") from e
        raise AptOstreeError(message.removeprefix("GDBus.Error:")) from e


def run_transaction(args: argparse.Namespace, verb: Verb) -> int:
    """Run ``verb`` through the daemon; returns the command's exit code."""
    bus = _bus()
    sysroot = bus.get_proxy(BUS_NAME, SYSROOT_PATH)
    os_path = _call("GetOS", lambda: sysroot.GetOS(""))
    os_proxy = bus.get_proxy(BUS_NAME, os_path)
    options = {k: _variant(verb.options[k], v) for k, v in options_from_args(verb, args).items()}
    arguments = [] if verb.positional is None else [positional_from_args(verb, args)]
    txn_path = _call(verb.method, lambda: getattr(os_proxy, verb.method)(*arguments, options))
    return watch(bus, txn_path, start=True)


def watch(bus: Any, txn_path: str, *, start: bool) -> int:
    from dasbus.loop import EventLoop  # type: ignore[import-untyped]
    from gi.repository import GLib

    txn = bus.get_proxy(BUS_NAME, txn_path)
    loop = EventLoop()
    progress = Progress()
    result: dict[str, Any] = {}

    def finished(success: bool, code: int, error: str, output: str) -> None:
        result.update(success=success, code=code, error=error, output=output)
        loop.quit()

    txn.Message.connect(progress.message)
    txn.TaskBegin.connect(progress.task_begin)
    txn.TaskEnd.connect(progress.task_end)
    txn.Finished.connect(finished)

    def on_sigint() -> bool:
        progress.message("Cancelling the transaction (it stops at the next safe point)...")
        try:
            txn.Cancel()
        except Exception as e:  # already finished, or the daemon is gone
            progress.message(f"cannot cancel: {e}")
        return True

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, on_sigint)
    if start:
        _call("Start", lambda: txn.Start())
    else:
        done, code, error, output = _call("GetResult", lambda: txn.GetResult())
        if code != -1:
            finished(done, code, error, output)
            return _report(result)
    # The daemon may go away (killed): notice instead of waiting forever.
    watcher = bus.get_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus")

    def owner_changed(name: str, old: str, new: str) -> None:
        if name == BUS_NAME and not new and not result:
            result.update(success=False, code=1, error="apt-ostreed exited during the transaction",
                          output="")
            loop.quit()

    watcher.NameOwnerChanged.connect(owner_changed)
    loop.run()
    return _report(result)


def _report(result: dict[str, Any]) -> int:
    sys.stdout.write(result.get("output", ""))
    sys.stdout.flush()
    error = result.get("error", "")
    for i, line in enumerate(error.splitlines()):
        print(line if line.startswith("hint: ") or i else f"error: {line}", file=sys.stderr)
    return int(result.get("code", 1))


def status_via_daemon() -> dict[str, Any]:
    import json

    bus = _bus()
    sysroot = bus.get_proxy(BUS_NAME, SYSROOT_PATH)
    return dict(json.loads(_call("GetStatus", lambda: sysroot.GetStatus())))


def watch_active() -> int:
    bus = _bus()
    sysroot = bus.get_proxy(BUS_NAME, SYSROOT_PATH)
    path = _call("ActiveTransaction", lambda: sysroot.ActiveTransaction)
    if path == "/":
        print("No transaction is running.")
        return 0
    print(f"Watching {_call('Title', lambda: bus.get_proxy(BUS_NAME, path).Title)} ({path})",
          file=sys.stderr)
    return watch(bus, path, start=False)
