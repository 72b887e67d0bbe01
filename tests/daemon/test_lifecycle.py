"""The daemon's life: killed with -9 in the middle of a transaction, and exiting when idle.

After ``kill -9`` of apt-ostreed at any point of a layered install the sysroot
is either as it was or has the complete new deployment (libostree swaps
deployments atomically; everything before is scratch space), ``ostree fsck``
is clean, no process and no mount of the transaction is left, and a restarted
daemon runs the next transaction.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.lib import AdminDeployment, admin_status, boot_entries, deployment_dir, fsck
from layer.lib import CLI, dpkg_versions

from .conftest import write_config
from .lib import (
    ACTIVATION,
    BUS_NAME,
    DAEMON,
    OS_PATH,
    Daemon,
    SystemBus,
    children_of_sysroot,
    mounts_under,
    object_path,
    ok,
    wait_for,
    wait_line,
)

pytestmark = [pytest.mark.root, pytest.mark.network]


def ids(deployments: list[AdminDeployment]) -> list[tuple[str, str, int]]:
    return [(d.osname, d.checksum, d.serial) for d in deployments]


def check_old_or_new(bus: SystemBus, sysroot: Path, before: list[AdminDeployment],
                     requested: list[str]) -> str:
    """'old' (exactly the deployments of ``before``) or 'new' (a complete new deployment on top,
    requesting ``requested``, the older ones kept in order)."""
    fsck(sysroot)
    after = admin_status(sysroot)
    entries = boot_entries(sysroot)
    assert [e.index for e in entries] == list(range(len(after))), [e.path.name for e in entries]
    for entry, d in zip(entries, after, strict=True):
        assert (sysroot / entry.ostree_arg.lstrip("/")).resolve() == deployment_dir(sysroot, d).resolve()
    ours = json.loads(ok(bus.run([*CLI, "--sysroot", str(sysroot), "status", "--json"])).stdout)
    assert [(d["osname"], d["checksum"], d["serial"]) for d in ours["deployments"]] == ids(after)
    if ids(after) == ids(before):
        return "old"
    assert ids(after)[0] not in ids(before) and ids(after)[1:] == ids(before)[:len(after) - 1], \
        (ids(before), ids(after))
    assert sorted(ours["deployments"][0]["requested-packages"]) == sorted(requested)
    installed = dpkg_versions(deployment_dir(sysroot, after[0]))
    assert all(package in installed for package in requested), installed
    return "new"


def kill_during_install(bus: SystemBus, daemon: Daemon, package: str, point: float | str,
                        requested: list[str]) -> str:
    """Start apt-ostreed, ``install PACKAGE`` through it, ``kill -9`` it at ``point`` (seconds
    after Start, or the progress line to wait for) and check what is left: 'old' or 'new'."""
    sysroot = daemon.sysroot
    daemon.start()
    before = admin_status(sysroot)
    if isinstance(point, float):
        txn = object_path(ok(bus.gdbus(OS_PATH, "org.aptostree1.OS.Install", f"['{package}']", "{}")).stdout)
        ok(bus.gdbus(txn, "org.aptostree1.Transaction.Start"))
        time.sleep(point)
        assert children_of_sysroot(sysroot), "the transaction is not running"
        daemon.kill(signal.SIGKILL)
    else:
        client = bus.popen([*CLI, "install", "-C", package], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen: list[str] = []
        assert client.stderr is not None and wait_line(client.stderr, point, seen), "".join(seen)
        # The layering overlay is not mounted where the host sees it.
        assert mounts_under(sysroot) == []
        daemon.kill(signal.SIGKILL)
        _, err = client.communicate(timeout=30)
        assert client.returncode == 1, "".join(seen) + err
        assert err.splitlines()[-1] == "error: apt-ostreed exited during the transaction", err
    # The transaction's process (and its sandbox) died with the daemon; no mount is left.
    wait_for("the transaction's processes to end", lambda: not children_of_sysroot(sysroot), timeout=10)
    assert mounts_under(sysroot) == []
    return check_old_or_new(bus, sysroot, before, [*requested, package])


def test_kill_9_at_several_times(system_bus: SystemBus, make_sysroot: Callable[..., Path],
                                 tmp_path: Path) -> None:
    """Early on (starting, checking out the base, downloading the lists), one after the other on a
    sysroot that starts without lists or checkout: each run finds what the last one left."""
    sysroot = make_sysroot("sysroot", warm=False)
    daemon = Daemon(system_bus, sysroot, write_config(tmp_path / "apt-ostreed.conf", 0), tmp_path / "log")
    try:
        for seconds in (0.3, 1.0, 2.0):
            # The postinst alone takes 3 s: nothing can be deployed yet.
            assert kill_during_install(system_bus, daemon, "aot-layer-slow", seconds, []) == "old", seconds
        daemon.start()
        before = admin_status(sysroot)
        proc = system_bus.aot("install", "aot-layer-dep")
        assert proc.returncode == 0, f"{proc.stderr}\n{daemon.log_text()}"
        assert check_old_or_new(system_bus, sysroot, before, ["aot-layer-dep"]) == "new"
    finally:
        daemon.stop()


def test_kill_9_at_several_steps(system_bus: SystemBus, sysroot: Path, tmp_path: Path) -> None:
    """While the maintainer script runs, as the deployment starts, right after it."""
    daemon = Daemon(system_bus, sysroot, write_config(tmp_path / "apt-ostreed.conf", 0), tmp_path / "log")
    requested: list[str] = []
    try:
        for point, package in (("Installing", "aot-layer-slow"), (r"Deploying \w+\.\.\.$", "aot-layer-slow"),
                               ("Deploying .* done", "aot-layer-dep")):
            outcome = kill_during_install(system_bus, daemon, package, point, requested)
            assert outcome == ("old" if point == "Installing" else "new" if "done" in point else outcome)
            if outcome == "new":
                requested.append(package)
        # A new daemon runs the next transaction.
        daemon.start()
        before = admin_status(sysroot)
        proc = system_bus.aot("install", "-C", "aot-layer")
        assert proc.returncode == 0, f"{proc.stderr}\n{daemon.log_text()}"
        assert check_old_or_new(system_bus, sysroot, before, [*requested, "aot-layer"]) == "new"
    finally:
        daemon.stop()


def pid_alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_activation_and_idle_exit(system_bus: SystemBus, sysroot: Path, tmp_path: Path) -> None:
    """The shipped activation file (Exec pointed at this tree): the bus starts apt-ostreed on
    demand; it exits when idle (IdleExitTimeout=3), never during a transaction."""
    log = tmp_path / "daemon.log"
    config = write_config(tmp_path / "apt-ostreed.conf", 3)
    shipped = ACTIVATION.read_text()
    assert "\nName=org.aptostree1\n" in shipped and "\nExec=/usr/bin/apt-ostreed\n" in shipped
    service = system_bus.services / ACTIVATION.name
    service.write_text(shipped.replace(
        "Exec=/usr/bin/apt-ostreed",
        f"Exec=/bin/sh -c 'exec {DAEMON} --sysroot {sysroot} --config {config} --debug >>{log} 2>&1'"))
    system_bus.reload_config()
    try:
        started = time.monotonic()
        assert "State: idle\n" in ok(system_bus.aot("status")).stdout  # the stdlib-only client activates
        first = system_bus.owner_pid(BUS_NAME)
        wait_for("apt-ostreed to exit when idle", lambda: not system_bus.has_owner(BUS_NAME), timeout=15)
        assert 3 <= time.monotonic() - started < 10
        wait_for("apt-ostreed to end", lambda: not pid_alive(first))
        assert "idle for 3s: exiting" in log.read_text()
        # Activated again by a transaction, and not leaving while it runs (about 6 s), with
        # nobody watching it.
        txn = object_path(ok(system_bus.gdbus(OS_PATH, "org.aptostree1.OS.Install", "['aot-layer-slow']",
                                              "{}")).stdout)
        ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.Start"))
        started = time.monotonic()
        assert system_bus.owner_pid(BUS_NAME) != first
        wait_for("apt-ostreed to exit after the transaction", lambda: not system_bus.has_owner(BUS_NAME),
                 timeout=40)
        assert time.monotonic() - started > 5, log.read_text()
        assert "transaction 1 finished: exit 0" in log.read_text()
        status = json.loads(ok(system_bus.run([*CLI, "--sysroot", str(sysroot), "status", "--json"])).stdout)
        assert status["deployments"][0]["requested-packages"] == ["aot-layer-slow"]
    finally:
        service.unlink()
        system_bus.reload_config()
        if system_bus.has_owner(BUS_NAME):
            os.kill(system_bus.owner_pid(BUS_NAME), signal.SIGTERM)
    # Neither running nor activatable: one clear line, exit 1.
    for args in (["status"], ["status", "--json"], ["install", "aot-layer"], ["transaction", "watch"]):
        proc = system_bus.aot(*args)
        assert proc.returncode == 1, proc
        assert proc.stderr == ("error: apt-ostreed is not running and cannot be activated\n"
                               "hint: start apt-ostreed, or use --sysroot DIR\n"), proc.stderr
