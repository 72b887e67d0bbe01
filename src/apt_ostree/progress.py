"""Progress reporting: one protocol, several sinks.

Library code reports through a ``Reporter``.  In a terminal or a log the CLI
prints plain lines; a transaction run by the daemon reports JSON lines on
stderr (``APT_OSTREE_PROGRESS=json``), which the daemon turns into D-Bus
signals, and the CLI on the other end of the bus shows them again.

Cancellation: in a daemon transaction SIGTERM asks to stop; the reporter
raises ``Cancelled`` at the next task boundary, so a transaction stops only
between steps (never inside the atomic deployment step).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from .errors import Cancelled

PROGRESS_ENV = "APT_OSTREE_PROGRESS"


class Reporter(Protocol):
    def message(self, text: str) -> None: ...

    @contextmanager
    def task(self, title: str) -> Iterator[None]: ...


class NullReporter:
    def message(self, text: str) -> None:
        pass

    @contextmanager
    def task(self, title: str) -> Iterator[None]:
        yield


class LineReporter:
    """Plain lines on a stream: 'title...' then 'title... done (1.2s)'."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream

    def message(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @contextmanager
    def task(self, title: str) -> Iterator[None]:
        start = time.monotonic()
        print(f"{title}...", file=self.stream, flush=True)
        yield
        print(f"{title}... done ({time.monotonic() - start:.1f}s)", file=self.stream, flush=True)


_cancel_requested = False


def _on_sigterm(signum: int, frame: object) -> None:
    global _cancel_requested
    _cancel_requested = True


class JsonLinesReporter:
    """One JSON object per line on stderr, for the daemon; honours cancellation."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        signal.signal(signal.SIGTERM, _on_sigterm)
        # The daemon starts its child with SIGTERM blocked: a cancel that came
        # early is delivered now, and the first task stops.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    def _emit(self, **event: object) -> None:
        print(json.dumps(event), file=self.stream, flush=True)

    def message(self, text: str) -> None:
        self._emit(message=text)

    @contextmanager
    def task(self, title: str) -> Iterator[None]:
        if _cancel_requested:
            raise Cancelled("transaction cancelled")
        start = time.monotonic()
        self._emit(task_begin=title)
        yield
        # No check here: a step that completed (a deployment) is not undone.
        self._emit(task_end=title, seconds=round(time.monotonic() - start, 3))


def make_reporter() -> Reporter:
    """The reporter for this process: JSON lines under the daemon, plain lines otherwise."""
    if os.environ.get(PROGRESS_ENV) == "json":
        return JsonLinesReporter()
    return LineReporter()
