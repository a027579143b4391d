"""Progress lines for the long offline commands (`train`, `evaluate`, `backtest --grid`).

Only for a person watching: lines go to stderr, and only when stderr is a terminal and the command
is not in ``--json`` mode; otherwise every method does nothing, so stdout and stderr of scripts,
tests and CI are unchanged. ``enabled()`` is the one place that decides.

    progress = Progress("backtest", json_mode=args.json)
    for i, policy in enumerate(policies, 1):
        progress.step(f"static grid {i}/{len(policies)}")      # backtest: static grid 3/12 ... 4 s
    with progress.phase("fitting on ETH, BTC"):             # a line whose seconds tick until done
        ...
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO


def enabled(json_mode: bool = False, stream: Any = None) -> bool:
    """Progress is shown only to a terminal (stderr by default), never in ``--json`` mode."""
    if json_mode:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class Progress:
    """Short ``command: what ... N s`` lines on stderr (seconds since the command started)."""

    def __init__(self, command: str, *, json_mode: bool = False, stream: TextIO | None = None,
                 show: bool | None = None, clock: Callable[[], float] = time.monotonic,
                 tick_seconds: float = 1.0) -> None:
        self.command = command
        self.stream = stream
        self.show = enabled(json_mode, stream) if show is None else show
        self._clock = clock
        self._start = clock()
        self.tick_seconds = tick_seconds

    def _out(self) -> TextIO:
        return self.stream if self.stream is not None else sys.stderr

    def _line(self, what: str) -> str:
        return f"{self.command}: {what} ... {self._clock() - self._start:.0f} s"

    def step(self, what: str) -> None:
        """One line for a step that starts now."""
        if self.show:
            print(self._line(what), file=self._out(), flush=True)

    @contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """A line for one long call, rewritten in place every ``tick_seconds`` with the elapsed time,
        finished with ``done`` (or ``failed``) when the call returns."""
        if not self.show:
            yield
            return
        out, stop = self._out(), threading.Event()

        def tick() -> None:
            while not stop.wait(self.tick_seconds):
                print("\r" + self._line(what), end="", file=out, flush=True)

        print(self._line(what), end="", file=out, flush=True)
        thread = threading.Thread(target=tick, name=f"{self.command}-progress", daemon=True)
        thread.start()
        ok = False
        try:
            yield
            ok = True
        finally:
            stop.set()
            thread.join()
            print("\r" + self._line(what) + (" done" if ok else " failed"), file=out, flush=True)
