"""Helpers of the daemon tests: a private system bus, clients of it, apt-ostreed itself.

Every process is started here (by the fixtures of conftest.py) and killed at
teardown; the clients are the real ones: our CLI, ``gdbus``, ``busctl``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layer.lib import CLI, ENV

TOP = Path(__file__).resolve().parents[2]
DAEMON = str(TOP / ".venv/bin/apt-ostreed")
POLKITD = "/usr/lib/polkit-1/polkitd"
POLICY = TOP / "data/polkit-1/actions/org.aptostree1.policy"
BUS_POLICY = TOP / "data/dbus-1/system.d/org.aptostree1.conf"
ACTIVATION = TOP / "data/dbus-1/system-services/org.aptostree1.service"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
BUS_NAME = "org.aptostree1"
SYSROOT_PATH = "/org/aptostree1/Sysroot"
OS_PATH = "/org/aptostree1/OS/debian"

# Debian's system.conf, minus what needs the real system (user, pidfile, syslog,
# activation helper: the bus starts services itself), listening on a socket of the
# test session, with a directory of activatable services of its own.
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
  </policy>
  <policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <include>{policy}</include>
</busconfig>
"""


def wait_for(what: str, check: Callable[[], bool], timeout: float = 15, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 5) -> None:
    """End a process this test suite started (by its id): ``sig``, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class SystemBus:
    """A private dbus-daemon with a system-bus configuration (and polkitd on it)."""

    socket: Path
    services: Path
    peers: list[subprocess.Popen[Any]] = field(default_factory=list)    # dbus-daemon, polkitd
    clients: list[subprocess.Popen[Any]] = field(default_factory=list)  # started by a test

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"

    @property
    def env(self) -> dict[str, str]:
        return {**ENV, "DBUS_SYSTEM_BUS_ADDRESS": self.address, "LC_ALL": "C.UTF-8"}

    def run(self, argv: Sequence[str | os.PathLike[str]], *, nobody: bool = False, timeout: float = 120,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*(NOBODY if nobody else []), *map(os.fspath, argv)], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, env={**self.env, **(env or {})},
                              timeout=timeout)

    def popen(self, argv: Sequence[str | os.PathLike[str]], *, nobody: bool = False,
              **kwargs: Any) -> subprocess.Popen[str]:
        """A client started in the background; killed at teardown if still running."""
        proc = subprocess.Popen([*(NOBODY if nobody else []), *map(os.fspath, argv)], text=True,
                                stdin=subprocess.DEVNULL, env=self.env, **kwargs)
        self.clients.append(proc)
        return proc

    def aot(self, *args: str | os.PathLike[str], nobody: bool = False,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``apt-ostree ARGS`` without --sysroot: a client of the daemon."""
        return self.run([*CLI, *args], nobody=nobody, timeout=timeout)

    def gdbus(self, path: str, method: str, *args: str, nobody: bool = False,
              dest: str = BUS_NAME) -> subprocess.CompletedProcess[str]:
        return self.run(["gdbus", "call", "--system", "--dest", dest, "--object-path", path,
                         "--method", method, *args], nobody=nobody)

    def busctl(self, *args: str, nobody: bool = False) -> subprocess.CompletedProcess[str]:
        return self.run(["busctl", f"--address={self.address}", *args], nobody=nobody)

    def owner_pid(self, name: str) -> int:
        proc = ok(self.gdbus("/org/freedesktop/DBus", "org.freedesktop.DBus.GetConnectionUnixProcessID", name,
                             dest="org.freedesktop.DBus"))
        return int(proc.stdout.strip().removeprefix("(uint32 ").removesuffix(",)"))

    def reload_config(self) -> None:
        ok(self.gdbus("/org/freedesktop/DBus", "org.freedesktop.DBus.ReloadConfig",
                      dest="org.freedesktop.DBus"))

    def has_owner(self, name: str) -> bool:
        proc = self.gdbus("/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner", name,
                          dest="org.freedesktop.DBus")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip() == "(true,)"

    def stop_clients(self) -> None:
        for proc in self.clients:
            stop_process(proc)
        self.clients.clear()

    def stop(self) -> None:
        self.stop_clients()
        for proc in reversed(self.peers):
            stop_process(proc)
        self.peers.clear()


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (f"{' '.join(map(str, proc.args))}: exit {proc.returncode}\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def object_path(gdbus_output: str) -> str:
    """The object path in a gdbus reply like ``(objectpath '/org/aptostree1/Transaction/1',)``."""
    m = re.search(r"objectpath '([^']+)'", gdbus_output)
    assert m, gdbus_output
    return m[1]


@dataclass
class Daemon:
    """``apt-ostreed --sysroot DIR --config FILE`` on the test bus."""

    bus: SystemBus
    sysroot: Path
    config: Path
    log: Path
    proc: subprocess.Popen[str] | None = None
    starts: int = 0

    def start(self, wait: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        wait_for("the previous apt-ostreed to leave the bus", lambda: not self.bus.has_owner(BUS_NAME))
        self.starts += 1
        with open(self.log, "a") as log:
            log.write(f"---- start {self.starts}\n")
            log.flush()
            self.proc = subprocess.Popen([DAEMON, "--sysroot", str(self.sysroot), "--config",
                                          str(self.config), "--debug"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=self.bus.env)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"apt-ostreed exited ({self.proc.returncode}):\n{self.log_text()}")
            return self.bus.has_owner(BUS_NAME)

        wait_for("apt-ostreed on the bus", ready)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


def children_of_sysroot(sysroot: Path) -> list[str]:
    """Command lines of live processes working on ``sysroot`` other than apt-ostreed itself:
    a transaction's child, its sandbox and what runs in it."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                          if line.startswith("State:")), "")
        except OSError:
            continue
        if str(sysroot) in cmdline and "apt-ostreed" not in cmdline and "zombie" not in state:
            found.append(cmdline)
    return found


def mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines()
            if f" {path}/" in line or f" {path} " in line]


def wait_line(stream: Any, pattern: str, seen: list[str]) -> bool:
    """Read ``stream`` (a client's stderr) until a line matches ``pattern`` (a regular expression,
    from the line's start); all lines go to ``seen``."""
    for line in stream:
        seen.append(line)
        if re.match(pattern, line):
            return True
    return False
