"""Progress reporting: one protocol, several sinks.

Library code reports through a ``Reporter``; the CLI prints plain lines to
stderr, the daemon (later) turns the same calls into D-Bus signals.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO


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
    """Plain lines on a stream: 'title... done (1.2s)'."""

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
