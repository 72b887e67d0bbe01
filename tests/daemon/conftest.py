"""Fixtures of the daemon tests: real peers, started by the tests and killed at teardown.

- ``system_bus`` (session): a private ``dbus-daemon`` with a system-bus
  configuration (Debian's policy, the shipped ``org.aptostree1.conf``) on a
  socket of this session, in a directory everyone may enter: the real
  ``polkitd`` (which drops to its own user) and the tests' unprivileged
  clients connect to it too.  polkitd runs on it with the shipped actions file
  installed under /usr/share/polkit-1/actions (polkitd only knows installed
  actions).
- ``sysroot``: a directory sysroot on ``layer_tree``: a hardlinked copy
  (``cp -al``) of one made once with ``apt-ostree admin init`` (and warmed with
  a dry-run install: package lists, base checkout).  libostree and the
  layering engine replace files, never write them in place, so copies cannot
  change the template (fsck of every copy would notice); apt's cache is
  copied for real.
- ``daemon``: ``apt-ostreed --sysroot SYSROOT`` on that bus (IdleExitTimeout=0);
  tests may kill and restart it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from layer.lib import CLI, ENV, REF
from testlib.compose import ComposedTree

from .lib import BUS_CONFIG, BUS_POLICY, POLICY, POLKITD, Daemon, SystemBus, wait_for

TOOLS = ("dbus-daemon", "gdbus", "busctl", "setpriv", "ostree", "chattr")
INSTALLED_POLICY = Path("/usr/share/polkit-1/actions") / POLICY.name
WARM_CACHE = "ostree/apt-ostree/cache"
CHECKOUTS = "ostree/apt-ostree/checkouts"


def probe() -> str | None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not os.access(POLKITD, os.X_OK):
        missing.append(POLKITD)
    return f"not installed: {', '.join(missing)}" if missing else None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") is not None and os.geteuid() == 0:
        why = probe()
        if why:
            pytest.skip(f"daemon tests: {why}")


@pytest.fixture(scope="session")
def polkit_actions() -> None:
    """The shipped polkit actions, installed for the session's polkitd.

    Left in place afterwards: another test session (another worktree) may be using it.
    """
    if not INSTALLED_POLICY.exists() or INSTALLED_POLICY.read_bytes() != POLICY.read_bytes():
        tmp = INSTALLED_POLICY.with_name(f".{POLICY.name}.{os.getpid()}")
        shutil.copyfile(POLICY, tmp)
        tmp.replace(INSTALLED_POLICY)


@pytest.fixture(scope="session")
def system_bus(polkit_actions: None) -> Iterator[SystemBus]:
    top = Path(tempfile.mkdtemp(prefix="aot-bus."))
    top.chmod(0o755)
    bus = SystemBus(top / "system_bus_socket", top / "services")
    bus.services.mkdir()
    config = top / "system.conf"
    config.write_text(BUS_CONFIG.format(socket=bus.socket, policy=BUS_POLICY, services=bus.services))
    try:
        # Services it activates see this bus as the system bus.
        dbus = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={config}"],
                                stdin=subprocess.DEVNULL, env=bus.env)
        bus.peers.append(dbus)
        wait_for("dbus-daemon's socket", bus.socket.exists)
        polkitd = subprocess.Popen([POLKITD, "--no-debug"], env=bus.env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        bus.peers.append(polkitd)
        wait_for("polkitd on the bus", lambda: bus.has_owner("org.freedesktop.PolicyKit1"))
        yield bus
    finally:
        bus.stop()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def sysroot_template(tmp_path_factory: pytest.TempPathFactory, layer_tree: ComposedTree) -> Iterator[Path]:
    """``admin init`` on ``layer_tree``, with the package lists and the base checkout of a first
    layering (a dry run) in its cache, as a sysroot has after its first ``install``."""
    root = tmp_path_factory.mktemp("daemon-sysroot") / "template"
    for args in (["admin", "init", str(root), "--repo", str(layer_tree.repo), "--ref", REF],
                 ["--sysroot", str(root), "install", "--dry-run", "aot-layer"]):
        proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV)
        assert proc.returncode == 0, proc.stderr
    assert (root / WARM_CACHE).is_dir() and (root / CHECKOUTS).is_dir()
    yield root
    subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)


@pytest.fixture
def make_sysroot(tmp_path: Path, sysroot_template: Path) -> Callable[..., Path]:
    """Factory: a new sysroot ``tmp_path/NAME`` (``warm=False``: without lists and checkout).

    Every process of these tests has OSTREE_SYSROOT_DEBUG=mutable-deployments: nothing
    is made immutable, the copies can simply be deleted.
    """

    def make(name: str, warm: bool = True) -> Path:
        root = tmp_path / name
        subprocess.run(["cp", "-al", str(sysroot_template), str(root)], check=True)
        # apt's cache holds files written in place (the copied dpkg status): a real copy.
        shutil.rmtree(root / WARM_CACHE)
        if warm:
            subprocess.run(["cp", "-a", str(sysroot_template / WARM_CACHE), str(root / WARM_CACHE)],
                           check=True)
        else:
            shutil.rmtree(root / CHECKOUTS)
        return root

    return make


@pytest.fixture
def sysroot(make_sysroot: Callable[..., Path]) -> Path:
    return make_sysroot("sysroot")


def write_config(path: Path, idle_exit_timeout: int) -> Path:
    path.write_text(f"[Daemon]\nIdleExitTimeout={idle_exit_timeout}\n")
    return path


@pytest.fixture
def daemon(system_bus: SystemBus, sysroot: Path, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(system_bus, sysroot, write_config(tmp_path / "apt-ostreed.conf", 0), tmp_path / "daemon.log")
    d.start()
    yield d
    system_bus.stop_clients()
    d.stop()
