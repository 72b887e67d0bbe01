"""One transaction at a time: busy, watching, clients that go away, cancel.

A layered install of ``aot-layer-slow`` (its postinst sleeps 3 s) gives the
tests time to act while a transaction runs; the CLI's progress lines on
stderr say when.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from deploy.lib import admin_status, fsck, snapshot
from layer.lib import CLI

from .lib import BUS_NAME, OS_PATH, SYSROOT_PATH, Daemon, SystemBus, object_path, ok, wait_for, wait_line

pytestmark = [pytest.mark.root, pytest.mark.network]


def active_transaction(bus: SystemBus) -> str:
    out = ok(bus.busctl("get-property", BUS_NAME, SYSROOT_PATH, "org.aptostree1.Sysroot",
                        "ActiveTransaction")).stdout
    return out.strip().removeprefix('o "').removesuffix('"')


def start_slow_install(bus: SystemBus, until: str = "Installing") -> tuple[subprocess.Popen[str], list[str]]:
    """``apt-ostree install aot-layer-slow`` in the background, once its stderr shows ``until``."""
    client = bus.popen([*CLI, "install", "-C", "aot-layer-slow"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    seen: list[str] = []
    assert client.stderr is not None
    assert wait_line(client.stderr, until, seen), "".join(seen)
    return client, seen


def finish(client: subprocess.Popen[str], seen: list[str], timeout: float = 60) -> tuple[int, str, str]:
    out, err = client.communicate(timeout=timeout)
    return client.returncode, out, "".join(seen) + err


def test_second_client_is_busy_and_can_watch(system_bus: SystemBus, daemon: Daemon, sysroot: Path) -> None:
    first, seen = start_slow_install(system_bus)
    path = active_transaction(system_bus)
    busy = system_bus.aot("install", "aot-layer-dep")
    assert busy.returncode == 1, busy.stderr
    assert busy.stderr.startswith("error: busy: transaction 'install aot-layer-slow' started by uid 0 "), \
        busy.stderr
    assert path in busy.stderr and "apt-ostree transaction watch" in busy.stderr
    assert "Traceback" not in busy.stderr and len(busy.stderr.splitlines()) == 1, busy.stderr
    # Other mutating methods too, from another client.
    proc = system_bus.gdbus(OS_PATH, "org.aptostree1.OS.Rollback", "{}")
    assert "org.aptostree1.Error.Busy" in proc.stderr, proc.stderr
    # A watcher (anyone may watch) attaches to the running transaction and ends with its result.
    watcher = system_bus.aot("transaction", "watch", nobody=True)
    code, out, err = finish(first, seen)
    assert code == 0, err
    assert watcher.returncode == 0, watcher.stderr
    assert watcher.stderr.startswith(f"Watching install aot-layer-slow ({path})\n"), watcher.stderr
    assert "Committing the layered tree...\n" in watcher.stderr
    assert watcher.stdout == out and "Installed: aot-layer-slow 1.0" in out
    assert [d["requested-packages"] for d in status_deployments(system_bus)] == [["aot-layer-slow"], []]
    # Nothing running: nothing to watch.
    assert ok(system_bus.aot("transaction", "watch")).stdout == "No transaction is running.\n"


def status_deployments(bus: SystemBus) -> list[dict[str, object]]:
    import json

    return list(json.loads(ok(bus.aot("status", "--json")).stdout)["deployments"])


def test_watcher_exits_with_the_transaction_exit_code(system_bus: SystemBus, daemon: Daemon,
                                                      sysroot: Path) -> None:
    before = snapshot(sysroot)
    first, seen = start_slow_install(system_bus)
    watcher = system_bus.popen([*CLI, "transaction", "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watched: list[str] = []
    assert watcher.stderr is not None and wait_line(watcher.stderr, "Watching", watched)
    # Cancelled by a client we did not write.
    ok(system_bus.gdbus(active_transaction(system_bus), "org.aptostree1.Transaction.Cancel"))
    code, _, err = finish(watcher, watched)
    assert code == 1, err
    assert err.splitlines()[-1] == "error: transaction cancelled", err
    code, _, err = finish(first, seen)
    assert code == 1 and err.splitlines()[-1] == "error: transaction cancelled", err
    assert snapshot(sysroot) == before


def test_transaction_survives_its_client(system_bus: SystemBus, daemon: Daemon, sysroot: Path) -> None:
    client, _ = start_slow_install(system_bus)
    path = active_transaction(system_bus)
    client.kill()
    client.wait()
    wait_for("the transaction to finish", lambda: active_transaction(system_bus) == "/", timeout=60)
    result = ok(system_bus.gdbus(path, "org.aptostree1.Transaction.GetResult")).stdout
    assert result.startswith("((true, 0, '', \"Installed: aot-layer-slow 1.0\\nDeployed "), result
    new, old = admin_status(sysroot)
    assert new.checksum != old.checksum
    assert [d["requested-packages"] for d in status_deployments(system_bus)] == [["aot-layer-slow"], []]
    fsck(sysroot)


def test_ctrl_c_cancels_during_the_build(system_bus: SystemBus, daemon: Daemon, sysroot: Path) -> None:
    before = snapshot(sysroot)
    client, seen = start_slow_install(system_bus)  # the postinst is sleeping
    client.send_signal(signal.SIGINT)
    code, out, err = finish(client, seen)
    assert code == 1, err
    assert "Cancelling the transaction" in err
    assert err.splitlines()[-1] == "error: transaction cancelled", err
    assert "Committing" not in err and "Traceback" not in err and out == ""
    assert snapshot(sysroot) == before
    fsck(sysroot)


def test_cancel_while_resolving(system_bus: SystemBus, daemon: Daemon, sysroot: Path) -> None:
    before = snapshot(sysroot)
    client, seen = start_slow_install(system_bus, until="Resolving packages...")
    ok(system_bus.gdbus(active_transaction(system_bus), "org.aptostree1.Transaction.Cancel"))
    code, _, err = finish(client, seen)
    assert code == 1 and err.splitlines()[-1] == "error: transaction cancelled", err
    assert "Installing" not in err, err
    assert snapshot(sysroot) == before


def test_cancel_right_after_start(system_bus: SystemBus, daemon: Daemon, sysroot: Path) -> None:
    """Before the command could report anything: it stops at its first task."""
    before = snapshot(sysroot)
    txn = object_path(ok(system_bus.gdbus(OS_PATH, "org.aptostree1.OS.Install", "['aot-layer-dep']",
                                          "{}")).stdout)
    ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.Start"))
    ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.Cancel"))
    wait_for("the transaction to finish", lambda: active_transaction(system_bus) == "/", timeout=60)
    result = ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.GetResult")).stdout
    assert result.startswith("((false, 1, 'transaction cancelled',"), result
    assert snapshot(sysroot) == before
