"""The CLI without --sysroot, gdbus and busctl as clients of apt-ostreed.

Root drives transactions through the daemon and gets what direct mode gives
(stdout, exit codes, progress lines on stderr); an unprivileged user reads the
status but every mutating method is refused and nothing changes; clients we
did not write see and call the interfaces.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.lib import admin_status, fsck, snapshot
from layer.lib import CLI, REF, ostree
from testlib.compose import ComposedTree

from .lib import BUS_NAME, OS_PATH, SYSROOT_PATH, Daemon, SystemBus, object_path, ok, wait_for

pytestmark = [pytest.mark.root, pytest.mark.network]
CHANGED = "org.freedesktop.DBus.Properties.PropertiesChanged"


def normalized(text: str) -> str:
    """Output with what differs between two sysroots made alike: checksums, durations, dates."""
    text = re.sub(r"\b[0-9a-f]{64}\b", "<CHECKSUM>", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "<SHORT>", text)
    text = re.sub(r"\(\d+\.\d+s\)", "(Ns)", text)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<DATE>", text)


def direct(bus: SystemBus, sysroot: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return bus.run([*CLI, "--sysroot", str(sysroot), *args])


def new_base(layer_tree: ComposedTree, tmp_path: Path) -> str:
    """Publish a new base on the server: the composed tree plus one file, version 2."""
    extra = tmp_path / "extra"
    (extra / "usr/share").mkdir(parents=True)
    (extra / "usr/share/v2-marker").write_text("v2\n")
    ostree(f"--repo={layer_tree.repo}", "commit", "-b", REF, f"--tree=ref={layer_tree.commit}",
           f"--tree=dir={extra}", "--add-metadata-string=version=2")
    return ostree(f"--repo={layer_tree.repo}", "rev-parse", REF).strip()


def test_root_transactions_match_direct_mode(system_bus: SystemBus, daemon: Daemon, sysroot: Path,
                                             make_sysroot: Callable[..., Path], layer_tree: ComposedTree,
                                             tmp_path: Path) -> None:
    other = make_sysroot("direct")
    steps: list[tuple[tuple[str, ...], int]] = [
        (("install", "aot-layer"), 0),
        (("install", "-C", "no-such-package-here"), 1),
        (("uninstall", "aot-layer-dep"), 1),        # not requested
        (("upgrade",), 77),                         # no new base
        (("install", "-C", "aot-layer-fail"), 1),   # failing postinst: a multi-line error
        (("upgrade",), 0),                          # a new base is published first
        (("rollback",), 0),
        (("kargs", "--append=quiet", "--append=-x=1"), 0),  # a value that looks like an option
        (("kargs", "--append-if-missing=quiet"), 77),
    ]
    try:
        for args, code in steps:
            if args == ("upgrade",) and code == 0:
                v2 = new_base(layer_tree, tmp_path)
            via_daemon = system_bus.aot(*args)
            in_process = direct(system_bus, other, *args)
            what = f"apt-ostree {' '.join(args)}"
            assert via_daemon.returncode == code, f"{what}: {via_daemon.stderr}\n{daemon.log_text()}"
            assert in_process.returncode == code, f"{what} (direct): {in_process.stderr}"
            assert normalized(via_daemon.stdout) == normalized(in_process.stdout), what
            # The same progress lines, messages and error (with its script output), in order.
            assert normalized(via_daemon.stderr) == normalized(in_process.stderr), what
            assert "Traceback" not in via_daemon.stderr
            if args == ("install", "aot-layer"):
                assert "Resolving packages...\n" in via_daemon.stderr
                assert re.search(r"^Installing 2 packages\.\.\. done \(\d+\.\ds\)$", via_daemon.stderr, re.M)
            if args == ("upgrade",) and code == 0:  # re-layered on the new base
                new = json.loads(ok(system_bus.aot("status", "--json")).stdout)["deployments"][0]
                assert (new["base-checksum"], new["requested-packages"]) == (v2, ["aot-layer"])
            if code == 1:
                errors = [line for line in via_daemon.stderr.splitlines() if line.startswith("error:")]
                assert len(errors) == 1, via_daemon.stderr
    finally:
        ostree(f"--repo={layer_tree.repo}", "reset", REF, layer_tree.commit)
    ours, theirs = admin_status(sysroot), admin_status(other)
    assert [d.props.get("Version") for d in ours] == [d.props.get("Version") for d in theirs]
    deployments = json.loads(ok(system_bus.aot("status", "--json")).stdout)["deployments"]
    assert deployments[0]["kernel-arguments"][-2:] == ["quiet", "-x=1"]
    fsck(sysroot)


@pytest.mark.parametrize("flags", [(), ("--json",), ("-v",), ("--booted", "--json")])
def test_status_through_daemon_is_direct_status(system_bus: SystemBus, daemon: Daemon, sysroot: Path,
                                                flags: tuple[str, ...]) -> None:
    if not flags:  # two deployments, one layered
        ok(system_bus.aot("install", "-C", "aot-layer-dep"))
    via_daemon = ok(system_bus.aot("status", *flags))
    in_process = ok(direct(system_bus, sysroot, "status", *flags))
    if "--json" in flags:
        ours, theirs = json.loads(via_daemon.stdout), json.loads(in_process.stdout)
        assert ours.pop("transaction") is None
        theirs.pop("transaction", None)
        assert ours == theirs
    else:
        assert via_daemon.stdout == in_process.stdout
    # The full client (PyGObject) prints the same as the stdlib-only fast path.
    full = ok(system_bus.run([*CLI, "--debug", "status", *flags]))
    assert full.stdout == via_daemon.stdout


def test_progress_on_a_terminal(system_bus: SystemBus, daemon: Daemon) -> None:
    """On a terminal the task line is rewritten in place: '[N] title...', then 'title... done'."""
    proc = subprocess.run(["script", "-qec", f"{CLI[0]} install -C aot-layer-dep", "/dev/null"],
                          capture_output=True, env=system_bus.env, stdin=subprocess.DEVNULL, timeout=120)
    out = proc.stdout.decode().replace("\r\n", "\n")  # the terminal's newlines; the bare \r remain
    assert proc.returncode == 0, out
    assert re.search(r"\r\x1b\[K\[1\] Resolving packages\.\.\."
                     r"\r\x1b\[KResolving packages\.\.\. done \(\d+\.\ds\)\n", out), repr(out)
    assert "\r\x1b[K[4] Committing the layered tree...\r\x1b[KCommitting the layered tree... done (" in out
    assert "Installed: aot-layer-dep 1.0\n" in out


def test_status_shows_the_running_transaction(system_bus: SystemBus, daemon: Daemon) -> None:
    client = system_bus.popen([*CLI, "install", "-C", "aot-layer-slow"], stderr=subprocess.PIPE)
    assert client.stderr is not None
    for line in client.stderr:
        if line.startswith("Installing"):
            break
    status = json.loads(ok(system_bus.aot("status", "--json")).stdout)
    txn = status["transaction"]
    assert txn["title"] == "install aot-layer-slow" and txn["state"] == "running", txn
    assert txn["initiator"].startswith("uid 0 ")
    assert ok(system_bus.aot("status")).stdout.startswith("State: busy (install aot-layer-slow)\n")
    assert client.wait(timeout=60) == 0


# ---- an unprivileged user ----------------------------------------------------------


MUTATING = {
    "Upgrade": ("{}",), "Deploy": ("'1'", "{}"), "Rebase": ("'test/other'", "{}"), "Rollback": ("{}",),
    "Cleanup": ("{'base': <true>}",), "KernelArgs": ("{'append': <['quiet']>}",),
    "Pin": ("0", "{}"), "Unpin": ("0", "{}"), "Install": ("['aot-layer']", "{}"),
    "Uninstall": ("['aot-layer']", "{}"), "OverrideRemove": ("['aot-base-extra']", "{}"),
    "OverrideReplace": ("['aot-base-extra=1.5']", "{}"), "OverrideReset": ("['aot-base-extra']", "{}"),
    "Reset": ("{}",), "RefreshMd": ("{}",),
}


def test_unprivileged_user_reads_but_cannot_change(system_bus: SystemBus, daemon: Daemon,
                                                   sysroot: Path) -> None:
    ok(system_bus.aot("install", "-C", "aot-layer-dep"))  # two deployments: rollback would do something
    before = snapshot(sysroot)
    # Reading needs no authorization: our CLI, gdbus, busctl.
    as_root = ok(system_bus.aot("status", "--json")).stdout
    assert ok(system_bus.aot("status", "--json", nobody=True)).stdout == as_root
    assert "LayeredPackages: aot-layer-dep" in ok(system_bus.aot("status", nobody=True)).stdout
    reply = ok(system_bus.gdbus(SYSROOT_PATH, "org.aptostree1.Sysroot.GetStatus", nobody=True)).stdout
    assert "aot-layer-dep" in reply
    prop = ok(system_bus.busctl("get-property", BUS_NAME, SYSROOT_PATH, "org.aptostree1.Sysroot",
                                "ActiveTransaction", nobody=True)).stdout
    assert prop.strip() == 'o "/"'
    # Every mutating verb through the CLI: one clear line, exit 1.
    for args in (["rollback"], ["upgrade"], ["install", "aot-layer"], ["uninstall", "aot-layer-dep"],
                 ["cleanup", "-b"], ["kargs", "--append=quiet"], ["refresh-md"]):
        proc = system_bus.aot(*args, nobody=True)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: uid 65534 "), proc.stderr
        assert "is not authorized for org.aptostree1." in proc.stderr
        assert "(authentication required)" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.splitlines()) == 1, proc.stderr
    # Every mutating method on the bus, from a client we did not write.
    for method, args in [*MUTATING.items(), ("ReloadConfig", ())]:
        path, iface = (SYSROOT_PATH, "Sysroot") if method == "ReloadConfig" else (OS_PATH, "OS")
        proc = system_bus.gdbus(path, f"org.aptostree1.{iface}.{method}", *args, nobody=True)
        assert proc.returncode != 0, f"{method}: {proc.stdout}"
        assert "org.aptostree1.Error.PermissionDenied" in proc.stderr, f"{method}: {proc.stderr}"
    # A transaction root created cannot be started or cancelled by someone else.
    txn = object_path(ok(system_bus.gdbus(OS_PATH, "org.aptostree1.OS.Rollback", "{}")).stdout)
    for method in ("Start", "Cancel"):
        proc = system_bus.gdbus(txn, f"org.aptostree1.Transaction.{method}", nobody=True)
        assert "org.aptostree1.Error.PermissionDenied" in proc.stderr, f"{method}: {proc.stderr}"
    ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.Cancel"))
    assert snapshot(sysroot) == before
    fsck(sysroot)


# ---- clients we did not write ------------------------------------------------------------


def test_busctl_and_gdbus_see_the_interfaces(system_bus: SystemBus, daemon: Daemon) -> None:
    sysroot_iface = ok(system_bus.busctl("introspect", BUS_NAME, SYSROOT_PATH)).stdout
    for member in (".GetStatus", ".GetOS", ".ListOS", ".ReloadConfig", ".Deployments",
                   ".ActiveTransaction", ".Booted", ".Path"):
        assert re.search(rf"^{re.escape(member)}\s", sysroot_iface, re.M), member
    os_iface = ok(system_bus.busctl("introspect", BUS_NAME, OS_PATH)).stdout
    for method in MUTATING:
        assert re.search(rf"^\.{method}\s+method\s+\S+\s+o\s", os_iface, re.M), method
    status = ok(system_bus.gdbus(SYSROOT_PATH, "org.aptostree1.Sysroot.GetStatus")).stdout
    data = json.loads(re.fullmatch(r"\('(.*)',\)\n", status, re.S)[1])  # type: ignore[index]
    assert len(data["deployments"]) == 1
    assert object_path(ok(system_bus.gdbus(SYSROOT_PATH, "org.aptostree1.Sysroot.GetOS", "''")).stdout) \
        == OS_PATH
    deployments = ok(system_bus.busctl("get-property", BUS_NAME, SYSROOT_PATH, "org.aptostree1.Sysroot",
                                       "Deployments")).stdout
    assert data["deployments"][0]["checksum"] in deployments
    # A transaction made by busctl: its interface, then cancelled before it started.
    reply = ok(system_bus.busctl("call", BUS_NAME, OS_PATH, "org.aptostree1.OS", "Install", "asa{sv}",
                                 "1", "aot-layer-dep", "0")).stdout
    txn = re.fullmatch(r'o "(/org/aptostree1/Transaction/\d+)"\n', reply)[1]  # type: ignore[index]
    txn_iface = ok(system_bus.busctl("introspect", BUS_NAME, txn)).stdout
    for member in (".Start", ".Cancel", ".GetResult", ".Title", ".Initiator", ".State", ".Message",
                   ".TaskBegin", ".TaskEnd", ".PercentProgress", ".DownloadProgress", ".Finished"):
        assert re.search(rf"^{re.escape(member)}\s", txn_iface, re.M), member
    assert re.search(r'^\.Title\s+property\s+s\s+"install aot-layer-dep"\s', txn_iface, re.M), txn_iface
    assert re.search(r'^\.State\s+property\s+s\s+"ready"\s', txn_iface, re.M), txn_iface
    ok(system_bus.busctl("call", BUS_NAME, txn, "org.aptostree1.Transaction", "Cancel"))
    result = ok(system_bus.busctl("call", BUS_NAME, txn, "org.aptostree1.Transaction", "GetResult")).stdout
    assert result.startswith('(biss) false 1 "transaction cancelled"'), result
    assert ok(system_bus.busctl("get-property", BUS_NAME, SYSROOT_PATH, "org.aptostree1.Sysroot",
                                "ActiveTransaction")).stdout.strip() == 'o "/"'


def test_gdbus_driven_rollback(system_bus: SystemBus, daemon: Daemon, sysroot: Path) -> None:
    ok(system_bus.aot("install", "-C", "aot-layer-dep"))
    before = [(d.checksum, d.serial) for d in admin_status(sysroot)]
    monitor = system_bus.popen(["gdbus", "monitor", "--system", "--dest", BUS_NAME],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    txn = object_path(ok(system_bus.gdbus(OS_PATH, "org.aptostree1.OS.Rollback", "{}")).stdout)
    assert re.fullmatch(r"/org/aptostree1/Transaction/\d+", txn)
    title = ok(system_bus.busctl("get-property", BUS_NAME, txn, "org.aptostree1.Transaction", "Title"))
    assert title.stdout.strip() == 's "rollback"'
    ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.Start"))

    def finished() -> bool:
        reply = ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.GetResult")).stdout
        return not reply.startswith("((false, -1,")  # (success, exit code, error, output)

    wait_for("the transaction to finish", finished, timeout=60)
    result = ok(system_bus.gdbus(txn, "org.aptostree1.Transaction.GetResult")).stdout
    assert result.startswith("((true, 0, '', 'Moving "), result
    after = [(d.checksum, d.serial) for d in admin_status(sysroot)]
    assert after == before[::-1]
    monitor.terminate()
    out, _ = monitor.communicate(timeout=10)
    # The signals a client we did not write sees, in order.
    signals = [line for line in out.splitlines() if line.startswith("/org/aptostree1/")]
    expected = [
        ("/org/aptostree1/Sysroot: ", CHANGED, f"'ActiveTransaction': <objectpath '{txn}'>",
         "'ActiveTransactionTitle': <'rollback'>"),
        (f"{txn}: ", CHANGED, "{'State': <'running'>}"),
        (f"{txn}: ", CHANGED, "{'State': <'finished'>}"),
        (f"{txn}: org.aptostree1.Transaction.Finished (true, 0, '', 'Moving ",),
        ("/org/aptostree1/Sysroot: ", CHANGED, "'ActiveTransaction': <objectpath '/'>", "'Deployments': <[{"),
    ]
    assert len(signals) == len(expected), out
    for line, (start, *parts) in zip(signals, expected, strict=True):
        assert line.startswith(start) and all(part in line for part in parts), (line, parts)


def test_bad_requests_change_nothing(system_bus: SystemBus, daemon: Daemon, sysroot: Path) -> None:
    before = snapshot(sysroot)
    ok(system_bus.run(["ostree", "admin", "os-init", "other", f"--sysroot={sysroot}"]))
    refused = [
        (OS_PATH, "Upgrade", ("{'install': <'htop'>, 'check': <'yes'>}",), "InvalidArguments",
         "Upgrade: option 'install' must be of type 'as', not 's'; "
         "option 'check' must be of type 'b', not 's'"),
        (OS_PATH, "Install", ("['aot-layer']", "{'bogus': <1>}"), "InvalidArguments",
         "Install: unknown option: bogus"),
        (OS_PATH, "Install", ("[]", "{}"), "InvalidArguments", "Install: no packages given"),
        (SYSROOT_PATH, "GetOS", ("'nope'",), "Daemon", "no stateroot named 'nope'"),
        ("/org/aptostree1/OS/other", "Rollback", ("{}",), "Failed",
         "stateroot 'other' is not the default one ('debian')"),
    ]
    other = object_path(ok(system_bus.gdbus(SYSROOT_PATH, "org.aptostree1.Sysroot.GetOS", "'other'")).stdout)
    assert other == "/org/aptostree1/OS/other"
    for path, method, args, error, message in refused:
        iface = "Sysroot" if path == SYSROOT_PATH else "OS"
        proc = system_bus.gdbus(path, f"org.aptostree1.{iface}.{method}", *args)
        assert proc.returncode != 0, f"{method}: {proc.stdout}"
        assert f"org.aptostree1.Error.{error}: {message}" in proc.stderr, proc.stderr
    # Through the CLI: a transaction that fails is one clear line.
    proc = system_bus.aot("deploy", "no-such-revision")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == \
        [proc.stderr.splitlines()[-1]], proc.stderr
    assert "no-such-revision" in proc.stderr
    assert "Traceback" not in daemon.log_text()
    assert snapshot(sysroot) == before
