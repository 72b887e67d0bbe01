"""A daemon transaction's child process, without a bus: what its output becomes.

The child here is a small Python program in place of ``apt-ostree --sysroot
DIR VERB``; it reports with the real ``JsonLinesReporter``.  No root needed.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from dataclasses import dataclass

from gi.repository import GLib

from apt_ostree.daemon.polkit import Caller
from apt_ostree.daemon.transaction import Result, Transaction


@dataclass
class ScriptTransaction(Transaction):
    script: str = ""

    def command(self) -> list[str]:
        return [sys.executable, "-c", textwrap.dedent(self.script)]


def run(script: str, *, cancel_after_start: bool = False) -> tuple[Result, list[dict[str, object]]]:
    events: list[dict[str, object]] = []
    results: list[Result] = []
    loop = GLib.MainLoop()

    def finished(txn: Transaction, result: Result) -> None:
        results.append(result)
        loop.quit()

    txn = ScriptTransaction(1, "test", Caller(":1.1", 0, 1), [], "/", on_event=lambda t, e: events.append(e),
                            on_finished=finished, script=script)
    txn.start()
    if cancel_after_start:
        txn.cancel()
    GLib.timeout_add_seconds(60, loop.quit)
    loop.run()
    assert results, "the transaction did not finish"
    return results[0], events


REPORTER = """
import sys, time
from apt_ostree.progress import JsonLinesReporter
reporter = JsonLinesReporter()
"""


def test_large_output_and_events_in_order() -> None:
    result, events = run(REPORTER + """
with reporter.task("Working"):
    sys.stdout.write("x" * 1_000_000)  # more than a pipe holds, before stderr closes
    reporter.message("halfway")
print("done")
""")
    assert result == Result(True, 0, "", "x" * 1_000_000 + "done\n")
    assert [e.get("task_begin") or e.get("message") or e.get("task_end") for e in events] == \
        ["Working", "halfway", "Working"]


def test_multi_line_error_and_hint_are_the_error() -> None:
    result, events = run("""
import sys
print("a progress line", file=sys.stderr)
print("error: dpkg failed (exit status 1):", file=sys.stderr)
print("Setting up aot-x ...", file=sys.stderr)
print("hint: see above", file=sys.stderr)
sys.exit(1)
""")
    assert result == Result(False, 1, "dpkg failed (exit status 1):\nSetting up aot-x ...\nhint: see above",
                            "")
    assert events == [{"message": "a progress line"}]


def test_usage_error_and_silent_failure() -> None:
    result, _ = run("""
import sys
print("usage: apt-ostree install ...", file=sys.stderr)
print("apt-ostree install: error: the following arguments are required: PACKAGE", file=sys.stderr)
sys.exit(2)
""")
    assert (result.exit_code, result.error) == (2, "the following arguments are required: PACKAGE")
    result, _ = run("import sys; sys.exit(3)")
    assert (result.success, result.exit_code) == (False, 3)
    assert result.error == "the transaction failed (exit status 3)"


def test_killed_child_is_one_error() -> None:
    result, _ = run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert result == Result(False, 1, f"the transaction's process was killed by signal {signal.SIGKILL}", "")


def test_cancel_before_the_reporter_stops_the_first_task() -> None:
    """SIGTERM comes while the child is still starting: it is held, not lost, not fatal."""
    result, events = run("import time; time.sleep(0.5)\n" + REPORTER + """
from apt_ostree.errors import Cancelled
try:
    with reporter.task("Never"):
        print("changed something")
except Cancelled as e:  # as the CLI's error handler does
    sys.exit(print(f"error: {e}", file=sys.stderr) or 1)
""", cancel_after_start=True)
    assert result.exit_code == 1 and result.error == "transaction cancelled", result
    assert events == [] and result.output == ""


def test_cancel_without_a_reporter_runs_to_the_end() -> None:
    """A command that never reports has no safe point: a cancel does not cut it in half."""
    result, _ = run("import time; time.sleep(0.5); print('whole')", cancel_after_start=True)
    assert result == Result(True, 0, "", "whole\n")
