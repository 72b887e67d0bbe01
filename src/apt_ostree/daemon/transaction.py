"""A transaction: one mutating command run by the daemon, watched over D-Bus.

The work runs in a child process (``python -m apt_ostree --sysroot DIR ...``),
the same engine as direct mode, reporting JSON lines on stderr.  A thread
reads them and hands each event to the main loop, which emits the
transaction's signals.  Cancel sends SIGTERM: the child stops at its next
safe point.  The child dies with the daemon (PR_SET_PDEATHSIG), and its
mounts with it (a mount namespace of its own).
"""

from __future__ import annotations

import ctypes
import enum
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from gi.repository import GLib

from ..mounts import CLONE_NEWNS, MS_REC, MS_SLAVE
from ..progress import PROGRESS_ENV
from .polkit import Caller

log = logging.getLogger(__name__)
# The CLI's error line, and argparse's ("apt-ostree install: error: ...").
ERROR_LINE = re.compile(r"^(?:apt-ostree(?: [\w-]+)*: )?error: (.*)$")
PR_SET_PDEATHSIG = 1


def _child_setup(daemon_pid: int, own_namespace: bool = True) -> Callable[[], None]:
    """In the child, before exec: die with the daemon, and mount in a namespace of its own.

    Whatever the child mounts (the layering overlay) lives in that namespace and
    goes away with it, even when the child is killed: no mount is left behind.
    Mounts of the host still propagate into it (slave).  SIGTERM (cancel) is
    blocked until the command can honour it.
    """
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before fork, not in the child

    def setup() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != daemon_pid:  # the daemon died before prctl took effect
            os._exit(1)
        if own_namespace and libc.unshare(CLONE_NEWNS) == 0:
            libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None)
        # A cancel (SIGTERM) that comes before the command reports progress stays
        # pending until its reporter takes it (progress.JsonLinesReporter); a command
        # that never reports has no safe point to stop at and runs to its end.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    return setup


class State(enum.Enum):
    READY = "ready"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass
class Result:
    success: bool
    exit_code: int
    error: str
    output: str


@dataclass
class Transaction:
    number: int
    title: str
    initiator: Caller
    argv: Sequence[str]                        # after --sysroot DIR
    sysroot: str
    on_event: Callable[[Transaction, dict[str, object]], None]
    on_finished: Callable[[Transaction, Result], None]
    state: State = State.READY
    created: float = field(default_factory=time.monotonic)
    current_task: str = ""
    tasks_done: int = 0
    result: Result | None = None
    cancel_requested: bool = False
    live: bool = False                         # mounts in the system's namespace (verbs.Verb.live)
    _proc: subprocess.Popen[str] | None = None

    @property
    def path(self) -> str:
        return f"/org/aptostree1/Transaction/{self.number}"

    def start(self) -> None:
        if self.state is not State.READY:
            return
        self.state = State.RUNNING
        env = {**os.environ, PROGRESS_ENV: "json", "LC_ALL": "C.UTF-8"}
        cmd = self.command()
        log.info("transaction %d (%s) for %s: %s", self.number, self.title, self.initiator, cmd)

        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=env,
                                      preexec_fn=_child_setup(os.getpid(), not self.live),
                                      cwd="/")
        threading.Thread(target=self._watch, name=f"transaction-{self.number}", daemon=True).start()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "apt_ostree", "--sysroot", self.sysroot, *self.argv]

    def cancel(self) -> None:
        self.cancel_requested = True
        if self.state is State.RUNNING and self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        elif self.state is State.READY:
            self._finish(Result(False, 1, "transaction cancelled", ""))

    def _watch(self) -> None:
        """Thread: read the child's events; everything else happens in the main loop."""
        proc = self._proc
        assert proc is not None and proc.stderr is not None and proc.stdout is not None
        errors: list[str] = []
        # stdout is read meanwhile: a command that prints more than a pipe holds
        # before it closes stderr would otherwise wait for us forever.
        output: list[str] = []
        stdout = proc.stdout
        reader = threading.Thread(target=lambda: output.append(stdout.read()),
                                  name=f"transaction-{self.number}-stdout", daemon=True)
        reader.start()
        for line in proc.stderr:
            line = line.rstrip("\n")
            try:
                event = json.loads(line)
                if not isinstance(event, dict):
                    raise ValueError
            except ValueError:
                # The command's error (its first line, the lines that continue it, such
                # as a script's output, and the hint) is the result, not messages: the
                # top-level handler prints it last.
                first = ERROR_LINE.match(line)
                if first and not errors:
                    errors.append(first[1])
                    continue
                if errors:
                    errors.append(line)
                    continue
                event = {"message": line}
            GLib.idle_add(self._event, event)
        reader.join()
        code = proc.wait()
        GLib.idle_add(self._finish, self._result(code, errors, "".join(output)))

    def _result(self, code: int, errors: list[str], output: str) -> Result:
        if code < 0:  # killed by a signal before it could say anything
            why = ("transaction cancelled" if self.cancel_requested and code == -signal.SIGTERM
                   else f"the transaction's process was killed by signal {-code}")
            return Result(False, 1, why, output)
        if code not in (0, 77) and not errors:
            errors = [f"the transaction failed (exit status {code})"]
        return Result(code in (0, 77), code, "\n".join(errors), output)

    def _event(self, event: dict[str, object]) -> bool:
        if "task_begin" in event:
            self.current_task = str(event["task_begin"])
        elif "task_end" in event:
            self.tasks_done += 1
        self.on_event(self, event)
        return False

    def _finish(self, result: Result) -> bool:
        if self.state is State.FINISHED:
            return False
        self.state = State.FINISHED
        self.result = result
        log.info("transaction %d finished: exit %d", self.number, result.exit_code)
        self.on_finished(self, result)
        return False
