"""Garbage collection off the daemon's decision path (``TickGC``, used by ``keeper.daemon.keeper``)."""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator


class TickGC:
    """Garbage collection off the decision path.

    The daemon's long-lived objects (config, ABIs, web3, the model, caches: everything ``startup``
    loads) are frozen (``gc.freeze``) so no later collection traverses them. During a tick automatic
    collection is off (it is process-wide: no other thread's allocations can start a collection
    inside a tick either); after each tick the young generations are collected, and the old one
    every ``full_every`` ticks once no newer head is waiting (at the latest after
    ``2 * full_every`` ticks, waiting or not), so memory stays bounded while the pauses land between
    ticks. Between ticks automatic collection runs with raised thresholds (``threshold``), for the
    background threads when ticks stop coming.

    ``start()`` once everything is loaded, ``with tick(): ...`` around each tick, ``after(idle)``
    after it, ``stop()`` at shutdown (the last one running restores the interpreter's thresholds
    and unfreezes)."""

    def __init__(self, *, full_every: int = 30, threshold: tuple[int, int, int] = (20_000, 20, 50)) -> None:
        if full_every < 1:
            raise ValueError("full_every must be >= 1")
        self.full_every, self.threshold = full_every, threshold
        self.ticks = self.young = self.full = 0
        self._since_full = 0
        self._started = False
        self._was_enabled = True
        self._depth = 0

    # Keepers running in one process (tests, benchmarks) share the interpreter's collector: the
    # first to start saves its thresholds, the last to stop restores them and unfreezes.
    _users = 0
    _users_lock = threading.Lock()
    _default: tuple[int, int, int] | None = None

    def start(self) -> None:
        gc.collect()  # the start-up garbage goes first, then the survivors are frozen
        gc.freeze()
        if self._started:
            return
        self._started = True
        with TickGC._users_lock:
            if TickGC._users == 0:
                TickGC._default = gc.get_threshold()
            TickGC._users += 1
            gc.set_threshold(*self.threshold)

    @contextlib.contextmanager
    def tick(self) -> Iterator[None]:
        """No automatic collection inside; re-enabled after (also on an error)."""
        if self._depth == 0:
            self._was_enabled = gc.isenabled()
            gc.disable()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.enable()

    def after(self, idle: bool = True) -> int:
        """Collect after a tick: the young generations always, the old one when due (``idle``: no
        newer head waiting for a tick). Returns the generation collected."""
        self.ticks += 1
        self._since_full += 1
        due = self._since_full >= self.full_every
        gen = 2 if due and (idle or self._since_full >= 2 * self.full_every) else 1
        gc.collect(gen)
        if gen == 2:
            self.full += 1
            self._since_full = 0
        else:
            self.young += 1
        return gen

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        with TickGC._users_lock:
            TickGC._users -= 1
            if TickGC._users == 0:
                gc.unfreeze()
                if TickGC._default is not None:
                    gc.set_threshold(*TickGC._default)
