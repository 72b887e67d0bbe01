"""The daemon on a booted system: live operations run in its transactions like every other.

A system bus (the tree's dbus-daemon) and ``apt-ostreed --sysroot /`` run inside
the booted namespaces; the CLI talks to them as a client (no ``--sysroot``).
There is no polkitd in there: the daemon authorizes root, as it does without
polkit.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from daemon.lib import BUS_CONFIG, BUS_POLICY
from testlib.booted import BootedSystem

from .test_live import booted, ok, status, usr_mount

pytestmark = [pytest.mark.root, pytest.mark.network]

BUS_DIR = "/run/aot-bus"
ADDRESS = f"unix:path={BUS_DIR}/system_bus_socket"


def start_bus_and_daemon(machine: BootedSystem, log: Path) -> list[subprocess.Popen[str]]:
    config = BUS_CONFIG.format(socket=f"{BUS_DIR}/system_bus_socket",
                               policy=f"{BUS_DIR}/org.aptostree1.conf", services=f"{BUS_DIR}/services")
    ok(machine.run("sh", "-c", f"mkdir -p {BUS_DIR}/services && cat > {BUS_DIR}/system.conf",
                   input=config))
    ok(machine.run("sh", "-c", f"cat > {BUS_DIR}/org.aptostree1.conf", input=BUS_POLICY.read_text()))
    env = {"DBUS_SYSTEM_BUS_ADDRESS": ADDRESS}
    peers = [machine.popen("dbus-daemon", "--nofork", f"--config-file={BUS_DIR}/system.conf",
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    deadline = time.monotonic() + 20
    while not machine.exists(f"{BUS_DIR}/system_bus_socket"):
        assert time.monotonic() < deadline, "the bus did not start"
        time.sleep(0.05)
    peers.append(machine.popen("python3", "-c", "import sys; from apt_ostree.daemon import main; "
                               "sys.exit(main(['--sysroot', '/', '--config', '/run/aot-bus/none.conf']))",
                               env=env, stdout=subprocess.DEVNULL, stderr=log.open("w")))
    while machine.run("python3", "-m", "apt_ostree", "status", env=env).returncode != 0:
        assert time.monotonic() < deadline, "apt-ostreed did not start"
        time.sleep(0.2)
    return peers


def test_daemon_install_apply_live_and_usroverlay_refusal(machine: BootedSystem, tmp_path: Path) -> None:
    env = {"DBUS_SYSTEM_BUS_ADDRESS": ADDRESS}
    peers = start_bus_and_daemon(machine, tmp_path / "apt-ostreed.log")
    try:
        proc = ok(machine.run("python3", "-m", "apt_ostree", "install", "--apply-live", "aot-live",
                              env=env))
        assert "Applied" in proc.stdout
        # The overlay was mounted in the system's mount namespace, not the transaction's.
        fs, _ = usr_mount(machine)
        assert fs == "overlay"
        assert ok(machine.run("aot-live")).stdout == "live-ok\n"
        pending = status(machine)["deployments"][0]
        assert pending["staged"] and booted(machine)["live-replaced"] == pending["checksum"]
        # Through the daemon, status shows it too.
        text = ok(machine.run("python3", "-m", "apt_ostree", "status", env=env)).stdout
        assert f"LiveCommit: {pending['checksum']}" in text
        # apply-live --reset through the daemon.
        ok(machine.run("python3", "-m", "apt_ostree", "apply-live", "--reset", env=env))
        assert machine.run("aot-live").returncode != 0
        # usroverlay on a transiently unlocked /usr: refused, one message, through the daemon.
        proc = machine.run("python3", "-m", "apt_ostree", "usroverlay", env=env)
        assert proc.returncode == 1 and "already unlocked" in proc.stderr, proc.stderr
    finally:
        for p in reversed(peers):
            p.kill()
            p.wait()
