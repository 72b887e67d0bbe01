"""apt-ostreed: the D-Bus service (org.aptostree1) in front of the engine.

Thin interfaces delegate to ``Daemon``: one mutating transaction at a time,
each authorized by polkit and run as a ``Transaction``; read-only queries
need no authorization.  The daemon exits when idle (IdleExitTimeout) and is
activated again on demand.

(No ``from __future__ import annotations`` here: dasbus reads the D-Bus types
from the annotations at run time.)
"""

import configparser
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

from dasbus.connection import SystemMessageBus  # type: ignore[import-untyped]
from dasbus.error import AbstractErrorRule, ErrorMapper  # type: ignore[import-untyped]
from dasbus.loop import EventLoop  # type: ignore[import-untyped]
from dasbus.server.interface import (  # type: ignore[import-untyped]
    accepts_additional_arguments,
    dbus_interface,
    dbus_signal,
)
from dasbus.server.property import PropertiesInterface  # type: ignore[import-untyped]
from dasbus.typing import Bool, Dict, Int, List, ObjPath, Str, Tuple, UInt32, UInt64, Variant  # type: ignore[import-untyped]
from gi.repository import GLib

from .. import statuscache
from ..errors import AptOstreeError, Busy, DaemonError, UsageError
from .polkit import authorize, identify
from .transaction import Result, State, Transaction
from .verbs import VERBS, Verb, argv_for, describe

log = logging.getLogger(__name__)

BUS_NAME = "org.aptostree1"
SYSROOT_PATH = "/org/aptostree1/Sysroot"
DEFAULT_CONFIG = Path("/etc/apt-ostreed.conf")
UNSTARTED_TIMEOUT = 60  # seconds a transaction may wait for its Start()
KEEP_FINISHED = 5       # finished transactions kept on the bus for late watchers
RELOAD_ACTION = "org.aptostree1.reload-daemon"


class AptOstreeErrorRule(AbstractErrorRule):  # type: ignore[misc]
    """Our exceptions travel as their own D-Bus error names (and back)."""

    def match_type(self, exception_type: type) -> bool:
        return issubclass(exception_type, AptOstreeError)

    def get_name(self, exception_type: type) -> str:
        return str(exception_type.dbus_name)  # type: ignore[attr-defined]

    def match_name(self, error_name: str) -> bool:
        return False

    def get_type(self, error_name: str) -> type:
        raise LookupError(error_name)


def to_variant(value: Any) -> Variant | None:
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, int):
        return Variant("x", value)
    if isinstance(value, str):
        return Variant("s", value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return Variant("as", value)
    return None


def unpack_options(verb: Verb, options: dict[str, Any]) -> dict[str, Any]:
    """The ``a{sv}`` of a method as plain values; every option of the wrong type is refused."""
    plain: dict[str, Any] = {}
    problems = []
    for key, value in options.items():
        kind = verb.options.get(key)
        signature = value.get_type_string() if isinstance(value, Variant) else None
        if kind is not None and signature is not None and signature != kind.value:
            problems.append(f"option {key!r} must be of type {kind.value!r}, not {signature!r}")
        plain[key] = value.unpack() if isinstance(value, Variant) else value
    if problems:
        raise UsageError(f"{verb.method}: {'; '.join(problems)}")
    return plain


def read_config(path: Path) -> dict[str, int]:
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error as e:
        log.warning("%s: %s", path, e)
    timeout = parser.getint("Daemon", "IdleExitTimeout", fallback=60) if parser.has_section("Daemon") else 60
    return {"IdleExitTimeout": timeout}


def os_object_path(osname: str) -> str:
    return f"/org/aptostree1/OS/{re.sub(r'[^A-Za-z0-9_]', '_', osname) or '_'}"


# ---- interfaces (thin) -------------------------------------------------------


@dbus_interface("org.aptostree1.Transaction")
class TransactionInterface(PropertiesInterface):  # type: ignore[misc]
    def __init__(self, daemon: "Daemon", txn: Transaction) -> None:
        super().__init__()
        self._daemon, self._txn = daemon, txn

    def changed(self, *names: str) -> None:
        """Emit PropertiesChanged for ``names``."""
        for name in names:
            self.report_changed_property(name)
        self.flush_changes()

    @property
    def Title(self) -> Str:
        return self._txn.title

    @property
    def Initiator(self) -> Str:
        return str(self._txn.initiator)

    @property
    def InitiatorUid(self) -> UInt32:
        return self._txn.initiator.uid

    @property
    def State(self) -> Str:
        return self._txn.state.value

    @property
    def CurrentTask(self) -> Str:
        return self._txn.current_task

    @property
    def TasksDone(self) -> UInt32:
        return self._txn.tasks_done

    @accepts_additional_arguments
    def Start(self, *, call_info: dict[str, Any]):  # type: ignore[no-untyped-def]
        self._daemon.start(self._txn, call_info["sender"])

    @accepts_additional_arguments
    def Cancel(self, *, call_info: dict[str, Any]):  # type: ignore[no-untyped-def]
        self._daemon.cancel(self._txn, call_info["sender"])

    def GetResult(self) -> Tuple[Bool, Int, Str, Str]:
        """(finished successfully, exit code, error text, output); exit code -1 while running."""
        r = self._txn.result
        return (r.success, r.exit_code, r.error, r.output) if r else (False, -1, "", "")

    @dbus_signal
    def Message(self, text: Str):  # type: ignore[no-untyped-def]
        pass

    @dbus_signal
    def TaskBegin(self, title: Str):  # type: ignore[no-untyped-def]
        pass

    @dbus_signal
    def TaskEnd(self, title: Str):  # type: ignore[no-untyped-def]
        pass

    @dbus_signal
    def PercentProgress(self, text: Str, percent: UInt32):  # type: ignore[no-untyped-def]
        pass

    @dbus_signal
    def DownloadProgress(self, done_bytes: UInt64, total_bytes: UInt64):  # type: ignore[no-untyped-def]
        pass

    @dbus_signal
    def Finished(self, success: Bool, exit_code: Int, error: Str, output: Str):  # type: ignore[no-untyped-def]
        pass


@dbus_interface("org.aptostree1.Sysroot")
class SysrootInterface(PropertiesInterface):  # type: ignore[misc]
    def __init__(self, daemon: "Daemon") -> None:
        super().__init__()
        self._daemon = daemon

    def changed(self, *names: str) -> None:
        for name in names:
            self.report_changed_property(name)
        self.flush_changes()

    @property
    def Path(self) -> Str:
        return str(self._daemon.sysroot)

    @property
    def Deployments(self) -> List[Dict[Str, Variant]]:
        out = []
        for d in self._daemon.status()["deployments"]:
            out.append({k: v for k, v in ((k, to_variant(val)) for k, val in d.items()) if v is not None})
        return out

    @property
    def Booted(self) -> Str:
        return self._daemon.status().get("booted") or ""

    @property
    def ActiveTransaction(self) -> ObjPath:
        txn = self._daemon.active_transaction()
        return txn.path if txn else "/"

    @property
    def ActiveTransactionTitle(self) -> Str:
        txn = self._daemon.active_transaction()
        return txn.title if txn else ""

    def GetStatus(self) -> Str:
        """The deployments as ``status --json`` prints them (a JSON text)."""
        return json.dumps(self._daemon.status())

    def GetOS(self, name: Str) -> ObjPath:
        """The OS object of stateroot ``name`` ('' for the booted or default one)."""
        return self._daemon.os_path(name)

    def ListOS(self) -> List[ObjPath]:
        return [os_object_path(n) for n in self._daemon.osnames()]

    @accepts_additional_arguments
    def ReloadConfig(self, *, call_info: dict[str, Any]):  # type: ignore[no-untyped-def]
        self._daemon.reload_config(call_info["sender"])


def _verb_method(method: str, positional_type: Any):  # type: ignore[no-untyped-def]
    """An OS method for ``method``: ``(positional, options a{sv}) -> transaction path``."""
    verb = VERBS[method]
    if positional_type is None:
        def call(self, options: Dict[Str, Variant], *, call_info):  # type: ignore[no-untyped-def]
            return self._daemon.submit(verb, None, options, call_info["sender"], self._osname)
        call.__annotations__ = {"options": Dict[Str, Variant], "return": ObjPath}
    else:
        def call(self, arg, options: Dict[Str, Variant], *, call_info):  # type: ignore[no-untyped-def,misc]
            return self._daemon.submit(verb, arg, options, call_info["sender"], self._osname)
        call.__annotations__ = {"arg": positional_type, "options": Dict[Str, Variant],
                                "return": ObjPath}
    call.__name__ = method
    return accepts_additional_arguments(call)


class _OSBase:
    def __init__(self, daemon: "Daemon", osname: str) -> None:
        self._daemon, self._osname = daemon, osname

    @property
    def Name(self) -> Str:
        return self._osname


_POSITIONAL_TYPES = {"revision": Str, "refspec": Str, "index": Int, "packages": List[Str]}
for _method, _verb in VERBS.items():
    setattr(_OSBase, _method, _verb_method(
        _method, _POSITIONAL_TYPES[_verb.positional] if _verb.positional else None))
OSInterface = dbus_interface("org.aptostree1.OS")(_OSBase)


# ---- the daemon ----------------------------------------------------------------


class Daemon:
    def __init__(self, bus: SystemMessageBus, sysroot: Path, config_path: Path, loop: EventLoop) -> None:
        self.bus, self.sysroot, self.config_path, self.loop = bus, sysroot, config_path, loop
        self.config = read_config(config_path)
        self.transactions: dict[int, tuple[Transaction, TransactionInterface]] = {}
        self.counter = 0
        self.last_activity = time.monotonic()
        self.published_os: set[str] = set()
        self.sysroot_iface: SysrootInterface | None = None

    # queries
    def status(self) -> dict[str, Any]:
        self.last_activity = time.monotonic()
        cached = statuscache.load(self.sysroot)
        if cached is not None:
            data = dict(cached[0])
        else:
            from ..engine import status as engine_status
            from ..ostree import Sysroot

            data = engine_status.status(Sysroot.open(self.sysroot))
        txn = self.active_transaction()
        data["transaction"] = ({"path": txn.path, "title": txn.title, "initiator": str(txn.initiator),
                                "state": txn.state.value} if txn else None)
        return data

    def osnames(self) -> list[str]:
        deploy = self.sysroot / "ostree/deploy"
        return sorted(p.name for p in deploy.iterdir()) if deploy.is_dir() else []

    def default_osname(self) -> str:
        """The stateroot of the booted deployment, else of the default one."""
        deployments = self.status()["deployments"]
        if not deployments:
            raise DaemonError(f"{self.sysroot}: no deployments")
        booted = [d for d in deployments if d["booted"]]
        return str((booted or deployments)[0]["osname"])

    def os_path(self, name: str) -> str:
        name = name or self.default_osname()
        if name not in self.osnames():
            raise DaemonError(f"no stateroot named {name!r}")
        self.publish_os(name)
        return os_object_path(name)

    def publish_os(self, name: str) -> None:
        if name not in self.published_os:
            self.bus.publish_object(os_object_path(name), OSInterface(self, name))
            self.published_os.add(name)

    def active_transaction(self) -> Transaction | None:
        for txn, _ in self.transactions.values():
            if txn.state is not State.FINISHED:
                return txn
        return None

    def reload_config(self, sender: str) -> None:
        authorize(self.bus, identify(self.bus, sender), RELOAD_ACTION)
        self.config = read_config(self.config_path)

    # transactions
    def submit(self, verb: Verb, positional: Any, options: dict[str, Any], sender: str,
               osname: str) -> str:
        self.last_activity = time.monotonic()
        caller = identify(self.bus, sender)
        authorize(self.bus, caller, verb.polkit_action)
        plain = unpack_options(verb, options)
        if verb.positional == "packages" and not positional and not plain.get("all"):
            raise UsageError(f"{verb.method}: no packages given")
        argv = argv_for(verb, positional, plain)
        default = self.default_osname()
        if osname != default:
            # The engine acts on the default stateroot (the booted one, else the first).
            raise AptOstreeError(f"stateroot {osname!r} is not the default one ({default!r}): "
                                 "transactions act on the default stateroot only")
        active = self.active_transaction()
        if active is not None:
            raise Busy(f"busy: transaction '{active.title}' started by {active.initiator} is running "
                       f"({active.path}); watch it with 'apt-ostree transaction watch'")
        self.counter += 1
        txn = Transaction(self.counter, describe(verb, positional), caller, argv, str(self.sysroot),
                          on_event=self._on_event, on_finished=self._on_finished, live=verb.live)
        iface = TransactionInterface(self, txn)
        self.bus.publish_object(txn.path, iface)
        self.transactions[txn.number] = (txn, iface)
        self.sysroot_changed("ActiveTransaction", "ActiveTransactionTitle")
        return txn.path

    def sysroot_changed(self, *names: str) -> None:
        if self.sysroot_iface is not None:
            try:
                self.sysroot_iface.changed(*names)
            except AptOstreeError as e:  # the status cannot be read now: say so, go on
                log.warning("%s", e)

    def start(self, txn: Transaction, sender: str) -> None:
        caller = identify(self.bus, sender)
        if caller.uid != txn.initiator.uid and caller.uid != 0:
            from ..errors import PermissionDenied

            raise PermissionDenied("only the initiator of a transaction (or root) can start it")
        txn.start()
        self.transactions[txn.number][1].changed("State")

    def cancel(self, txn: Transaction, sender: str) -> None:
        caller = identify(self.bus, sender)
        if caller.uid != txn.initiator.uid and caller.uid != 0:
            from ..errors import PermissionDenied

            raise PermissionDenied("only the initiator of a transaction (or root) can cancel it")
        txn.cancel()

    def _on_event(self, txn: Transaction, event: dict[str, object]) -> None:
        self.last_activity = time.monotonic()
        iface = self.transactions[txn.number][1]
        if "task_begin" in event:
            iface.TaskBegin.emit(str(event["task_begin"]))
            iface.changed("CurrentTask")
        elif "task_end" in event:
            iface.TaskEnd.emit(str(event["task_end"]))
            iface.changed("TasksDone")
        elif "percent" in event:
            iface.PercentProgress.emit(str(event.get("text", "")), int(event["percent"]))  # type: ignore[call-overload]
        elif "message" in event:
            iface.Message.emit(str(event["message"]))

    def _on_finished(self, txn: Transaction, result: Result) -> None:
        self.last_activity = time.monotonic()
        iface = self.transactions[txn.number][1]
        iface.changed("State")
        iface.Finished.emit(result.success, result.exit_code, result.error, result.output)
        self.sysroot_changed("ActiveTransaction", "ActiveTransactionTitle", "Deployments", "Booted")
        for number in sorted(self.transactions)[:-KEEP_FINISHED]:
            old, _ = self.transactions[number]
            if old.state is State.FINISHED:
                self.bus.unpublish_object(old.path)
                del self.transactions[number]

    def tick(self) -> bool:
        """Every few seconds: drop transactions nobody started; exit when idle."""
        now = time.monotonic()
        for txn, _ in list(self.transactions.values()):
            if txn.state is State.READY and now - txn.created > UNSTARTED_TIMEOUT:
                txn.cancel()
        timeout = self.config["IdleExitTimeout"]
        if timeout > 0 and self.active_transaction() is None and now - self.last_activity > timeout:
            log.info("idle for %ds: exiting", timeout)
            self.loop.quit()
            return False
        return True


class RefusedCallFilter(logging.Filter):
    """A call refused with one of our errors (not authorized, busy) is one log line, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, AptOstreeError):
            record.msg, record.args = f"{record.getMessage()} {error}", ()
            record.exc_info, record.exc_text = None, None
        return True


def serve(sysroot: Path, config_path: Path = DEFAULT_CONFIG) -> int:
    logging.getLogger("dasbus.server.handler").addFilter(RefusedCallFilter())
    mapper = ErrorMapper()
    mapper.add_rule(AptOstreeErrorRule())
    bus = SystemMessageBus(error_mapper=mapper)
    loop = EventLoop()
    daemon = Daemon(bus, sysroot, config_path, loop)
    daemon.sysroot_iface = SysrootInterface(daemon)
    bus.publish_object(SYSROOT_PATH, daemon.sysroot_iface)
    for name in daemon.osnames():
        daemon.publish_os(name)
    bus.register_service(BUS_NAME)
    GLib.timeout_add_seconds(2, daemon.tick)
    log.info("apt-ostreed serving %s on the system bus", sysroot)
    try:
        loop.run()
    finally:
        bus.disconnect()
    return 0
