"""A booted system (testlib.booted): staged deployments, apply-live, usroverlay.

Every command runs inside the booted namespaces with the tree's own python3
(``machine.cli`` is ``apt-ostree --sysroot /``); checks read the system from
inside (programs, mounts, /etc) and the sysroot from outside (boot entries,
``ostree admin status``).
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from layer.lib import CLI, ENV, MARKER
from testlib.booted import BootedSystem, boot_entries
from testlib.tools import assert_one_error

pytestmark = [pytest.mark.root, pytest.mark.network]


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def status(machine: BootedSystem) -> dict[str, Any]:
    return dict(json.loads(ok(machine.cli("status", "--json")).stdout))


def booted(machine: BootedSystem) -> dict[str, Any]:
    return next(d for d in status(machine)["deployments"] if d["booted"])


def usr_mount(machine: BootedSystem) -> tuple[str, str]:
    """(fstype, options) of the mount on /usr that processes see (the topmost)."""
    mounts = [(fs, opts) for target, fs, opts in machine.mounts() if target == "/usr"]
    assert mounts, "nothing mounted on /usr"
    return mounts[-1]


def snapshot(machine: BootedSystem) -> tuple[object, ...]:
    """What a refused command must leave alone: deployments, boot entries, /usr, live state."""
    return (ok(machine.run("ostree", "admin", "status")).stdout,
            sorted(e.path.read_text() for e in boot_entries(machine.sysroot)),
            usr_mount(machine), machine.run("ls", "-A", "/usr/bin").stdout,
            machine.run("ls", "-A", "/run/apt-ostree/live").stdout)


def test_harness_boots_the_default_deployment(machine: BootedSystem) -> None:
    admin = ok(machine.run("ostree", "admin", "status")).stdout
    assert admin.startswith("* "), admin
    assert "ostree=/ostree/boot." in machine.read("/proc/cmdline")
    d = booted(machine)
    assert machine.deployment is not None and machine.deployment.name == f"{d['checksum']}.{d['serial']}"
    fs, opts = usr_mount(machine)
    assert opts.startswith("ro"), (fs, opts)
    assert machine.run("touch", "/usr/x").returncode != 0  # /usr is read-only, as booted
    # /var from the stateroot, populated by tmpfiles at boot: the dpkg database link.
    assert ok(machine.run("dpkg-query", "-W", "python3")).stdout.startswith("python3")
    # The tree's Python bytecode is valid as deployed (mtime 0): nothing is compiled at start.
    proc = ok(machine.run("python3", "-v", "-c", "import json, gi, apt_pkg"))
    # (sitecustomize.py is a link to /etc/python3.11, configuration with its own mtime.)
    compiled = [ln for ln in proc.stderr.splitlines() if ln.startswith("# code object from")
                and ".pyc" not in ln and "sitecustomize" not in ln]
    assert not compiled, compiled[:5]


def test_install_stages_and_shutdown_finalizes_with_etc_edits(machine: BootedSystem) -> None:
    entries_before = sorted(e.path.read_text() for e in boot_entries(machine.sysroot))
    out = ok(machine.cli("install", "aot-live")).stdout
    assert "Staged" in out
    new, cur = status(machine)["deployments"][:2]
    assert new["staged"] and not new["booted"] and new["requested-packages"] == ["aot-live"]
    assert cur["booted"]
    assert "(staged)" in ok(machine.run("ostree", "admin", "status")).stdout
    # Staged: nothing reaches the boot loader before shutdown.
    assert sorted(e.path.read_text() for e in boot_entries(machine.sysroot)) == entries_before
    assert machine.exists("/run/ostree/staged-deployment")
    # An /etc edit made after staging is carried into the new deployment at shutdown.
    ok(machine.sh("echo edited-after-staging > /etc/aot-after-staging"))
    finalize = machine.shutdown()
    assert finalize is not None and "Copying /etc changes" in finalize.stdout + finalize.stderr
    deployment = machine.boot()
    assert deployment.name == f"{new['checksum']}.{new['serial']}"
    assert ok(machine.run("aot-live")).stdout == "live-ok\n"
    assert machine.read("/etc/aot-after-staging") == "edited-after-staging\n"
    d = booted(machine)
    assert d["checksum"] == new["checksum"] and not d["staged"]
    # rollback with a staged deployment: back to the former one, the staged one dropped.
    ok(machine.cli("install", "aot-layer-dep"))
    out = ok(machine.cli("rollback")).stdout
    assert "Dropped the staged deployment" in out
    deployments = status(machine)["deployments"]
    assert [x["checksum"] for x in deployments] == [cur["checksum"], new["checksum"]]
    assert not any(x["staged"] for x in deployments)
    machine.reboot()
    assert booted(machine)["checksum"] == cur["checksum"]


def test_staged_deployment_is_lost_without_shutdown(machine: BootedSystem) -> None:
    first = booted(machine)
    ok(machine.cli("install", "aot-live"))
    machine.crash()  # power loss: ostree-finalize-staged never ran
    machine.boot()
    d = booted(machine)
    assert d["checksum"] == first["checksum"]
    assert not any(x["staged"] for x in status(machine)["deployments"])
    assert machine.run("aot-live").returncode != 0


def test_cleanup_pending_drops_the_staged_deployment(machine: BootedSystem) -> None:
    first = booted(machine)
    ok(machine.cli("install", "aot-live"))
    assert status(machine)["deployments"][0]["staged"]
    ok(machine.cli("cleanup", "-p"))
    assert [d["checksum"] for d in status(machine)["deployments"]] == [first["checksum"]]
    assert not machine.exists("/run/ostree/staged-deployment")
    machine.reboot()
    assert booted(machine)["checksum"] == first["checksum"]


def test_second_install_before_reboot_keeps_the_first(machine: BootedSystem) -> None:
    ok(machine.cli("install", "aot-live"))
    ok(machine.cli("install", "aot-layer-dep"))
    pending = status(machine)["deployments"][0]
    assert pending["staged"]
    assert sorted(pending["requested-packages"]) == ["aot-layer-dep", "aot-live"]


def test_users_created_by_a_staged_package_survive_finalization(machine: BootedSystem) -> None:
    """/etc of a staged deployment is merged at shutdown from the booted /etc (edited here)."""
    ok(machine.sh("echo 'aotadmin:x:4242:4242::/nonexistent:/usr/sbin/nologin' >> /etc/passwd"))
    ok(machine.cli("install", "aot-adduser"))
    machine.reboot()
    assert ok(machine.run("getent", "passwd", "aotsvc")).stdout.startswith("aotsvc:")
    assert ok(machine.run("getent", "group", "aotsvc")).stdout.startswith("aotsvc:")
    assert ok(machine.run("getent", "passwd", "aotadmin")).stdout.startswith("aotadmin:x:4242:")


def test_install_apply_live_running_processes_unaffected(machine: BootedSystem) -> None:
    # Started before: its working directory is the /usr/bin it saw at start.
    before = machine.popen("sh", "-c", "cd /usr/bin && read go && "
                           "if [ -e aot-live ]; then echo sees-new; else echo sees-old; fi",
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    time.sleep(0.3)
    proc = ok(machine.cli("install", "--apply-live", "aot-live"))
    assert "Applied" in proc.stdout
    # A process started afterwards runs the layered program.
    assert ok(machine.run("aot-live")).stdout == "live-ok\n"
    assert machine.run("dpkg-query", "-W", "-f=${Status}", "aot-live").stdout == "install ok installed"
    assert before.poll() is None
    out, _ = before.communicate("go\n", timeout=10)
    assert out == "sees-old\n" and before.returncode == 0
    # New default config file; /var from the package's tmpfiles entries.
    assert machine.read("/etc/aot-live.conf") == "mode=default\n"
    assert machine.read("/var/lib/aot-live/seed") == "seed\n"
    # /usr stays read-only for everyone (the overlay is transient and read-only).
    fs, opts = usr_mount(machine)
    assert fs == "overlay" and opts.startswith("ro"), (fs, opts)
    assert machine.run("touch", "/usr/x").returncode != 0
    deployments = status(machine)["deployments"]
    pending = deployments[0]
    cur = next(d for d in deployments if d["booted"])
    assert pending["staged"] and cur["live-replaced"] == pending["checksum"]
    assert cur["unlocked"] == "transient"
    text = ok(machine.cli("status")).stdout
    assert f"LiveCommit: {pending['checksum']}" in text
    # Again: nothing to do.
    assert machine.cli("apply-live").returncode == 77


def test_apply_live_refuses_replacement_without_flag_and_reset(machine: BootedSystem) -> None:
    motd = machine.read("/usr/share/base-files/motd")
    ok(machine.cli("install", "aot-layer"))  # its postinst appends to a file of the base
    before = snapshot(machine)
    proc = machine.cli("apply-live")
    assert_one_error(proc, "/usr/share/base-files/motd", "--allow-replacement")
    assert snapshot(machine) == before
    assert machine.run("aot-layer").returncode != 0
    ok(machine.cli("apply-live", "--allow-replacement"))
    assert ok(machine.run("aot-layer")).stdout == "layered-ok\n"
    assert MARKER in machine.read("/usr/share/base-files/motd")
    # --reset: /usr shows the booted commit again; the pending deployment stays.
    ok(machine.cli("apply-live", "--reset"))
    assert machine.run("aot-layer").returncode != 0
    assert machine.read("/usr/share/base-files/motd") == motd
    assert booted(machine).get("live-replaced") is None
    assert status(machine)["deployments"][0]["staged"]


def test_reboot_boots_pending_with_package_and_without_overlay(machine: BootedSystem) -> None:
    ok(machine.cli("install", "--apply-live", "aot-live"))
    pending = status(machine)["deployments"][0]
    machine.reboot()
    d = booted(machine)
    assert d["checksum"] == pending["checksum"]
    assert d.get("live-replaced") is None and d["unlocked"] == "none"
    fs, opts = usr_mount(machine)
    assert fs != "overlay" and opts.startswith("ro"), (fs, opts)
    assert ok(machine.run("aot-live")).stdout == "live-ok\n"
    assert ok(machine.run("ostree", "admin", "status")).stdout.startswith("* ")


def test_apply_live_target_keeps_locally_changed_etc(machine: BootedSystem) -> None:
    """--target: new defaults appear in /etc; a file the administrator changed is kept."""
    ok(machine.cli("install", "aot-live"))
    pending = status(machine)["deployments"][0]["checksum"]
    ok(machine.run("ostree", "refs", "--repo=/ostree/repo", "--create=aot/keep", pending))
    ok(machine.cli("cleanup", "-p"))  # the commit stays (a ref): a target by checksum
    ok(machine.sh("echo mode=local > /etc/aot-live.conf"))
    ok(machine.cli("apply-live", "--target", pending))
    assert ok(machine.run("aot-live")).stdout == "live-ok\n"
    assert machine.read("/etc/aot-live.conf") == "mode=local\n"
    assert booted(machine)["live-replaced"] == pending


def test_usroverlay_is_writable_until_reboot(machine: BootedSystem) -> None:
    ok(machine.cli("usroverlay"))
    assert booted(machine)["unlocked"] == "development"
    ok(machine.run("touch", "/usr/aot-dev-file"))
    assert_one_error(machine.cli("usroverlay"), "already unlocked")
    machine.reboot()
    assert not machine.exists("/usr/aot-dev-file")
    assert booted(machine)["unlocked"] == "none"


def test_usroverlay_hotfix_survives_reboot_with_rollback(machine: BootedSystem) -> None:
    first = booted(machine)
    ok(machine.cli("usroverlay", "--hotfix"))
    ok(machine.run("touch", "/usr/aot-hotfix-file"))
    deployments = status(machine)["deployments"]
    assert len(deployments) == 2 and deployments[0]["unlocked"] == "hotfix"
    assert deployments[1]["checksum"] == first["checksum"] and deployments[1]["unlocked"] == "none"
    machine.reboot()
    assert machine.exists("/usr/aot-hotfix-file")
    assert booted(machine)["unlocked"] == "hotfix"


# ---- bad input ---------------------------------------------------------------------


def test_apply_live_refused_when_not_booted(machine: BootedSystem) -> None:
    """Direct mode on the same sysroot from outside: not booted."""
    before = sorted(p.name for p in (machine.sysroot / "ostree/deploy/debian/deploy").iterdir())
    for args in (["apply-live"], ["install", "--apply-live", "aot-live"], ["usroverlay"]):
        proc = subprocess.run([*CLI, "--sysroot", str(machine.sysroot), *args], capture_output=True,
                              text=True, env=ENV)
        assert_one_error(proc, "not booted")
    assert sorted(p.name for p in (machine.sysroot / "ostree/deploy/debian/deploy").iterdir()) == before


def test_apply_live_with_nothing_pending(machine: BootedSystem) -> None:
    before = snapshot(machine)
    assert_one_error(machine.cli("apply-live"), "no pending deployment")
    assert snapshot(machine) == before


def test_apply_live_twice_at_once(machine: BootedSystem) -> None:
    ok(machine.cli("install", "aot-live"))
    # A live update in progress holds its lock (the same lock apply-live takes).
    ok(machine.run("mkdir", "-p", "/run/apt-ostree"))
    holder = machine.popen("flock", "/run/apt-ostree/live.lock", "sleep", "30",
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while machine.run("flock", "-n", "/run/apt-ostree/live.lock", "true").returncode == 0:
            assert holder.poll() is None and time.monotonic() < deadline, "the lock holder did not start"
            time.sleep(0.05)
        before = snapshot(machine)
        assert_one_error(machine.cli("apply-live"), "another live update")
        assert snapshot(machine) == before
    finally:
        holder.kill()
        holder.wait()


def test_apply_live_concurrent_runs_one_wins(machine: BootedSystem) -> None:
    ok(machine.cli("install", "aot-live"))
    runs = [machine.popen("python3", "-m", "apt_ostree", "--sysroot", "/", "apply-live",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in runs]
    codes = sorted(code for code, _ in results)
    # One applies; the other is refused (busy) or finds it done (77).
    assert codes[0] == 0 and codes[1] in (1, 77), results
    if codes[1] == 1:
        assert any("another live update" in err for code, err in results if code == 1), results
    assert ok(machine.run("aot-live")).stdout == "live-ok\n"


def test_deployment_dirs_of_pending_hold_the_package(machine: BootedSystem) -> None:
    """The staged deployment on disk (outside the namespace) has the package for good."""
    ok(machine.cli("install", "--apply-live", "aot-live"))
    pending = status(machine)["deployments"][0]
    root = machine.sysroot / f"ostree/deploy/debian/deploy/{pending['checksum']}.{pending['serial']}"
    assert (root / "usr/bin/aot-live").is_file()
    booted_dir = machine.deployment
    assert booted_dir is not None and not (booted_dir / "usr/bin/aot-live").exists()
