"""Writing a tick's snapshot to the store: positions, checked price rounds, accounts and the
checkpoint, in one transaction (``Store.write_tick``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from keeper.protocols.reader import Snapshot
from keeper.store import AccountRecord, PriceRoundRecord, Store


def record_snapshot(store: Store, snap: Snapshot, *, watched: Sequence[str] = (), kind: str = "watch") -> None:
    rounds = [PriceRoundRecord(snap.chain, r.feed.lower(), r.round.round_id, r.round.answer, r.round.started_at,
                               r.round.updated_at, r.round.answered_in_round)
              for r in snap.prices.values() if r.round is not None]
    accounts = [AccountRecord(snap.chain, a.lower(), kind) for a in watched]
    store.write_tick(snap.chain, snap.block, snap.block_hash, snap.positions, rounds=rounds, accounts=accounts)


class SnapshotWriter:
    """Writes the daemon's snapshots off the tick's thread (1,000 positions take ~0.2 s to write to
    SQLite: time the next block should not wait for). Coalescing: when the writer is still busy,
    a newer snapshot replaces the one waiting, so the store may skip blocks under load but never
    falls behind. Failures are logged and counted, never raised into a tick."""

    def __init__(self, store: Store, *, kind: str = "watch",
                 on_error: Callable[[int, Exception], None] | None = None) -> None:
        import threading

        self.store, self.kind, self.on_error = store, kind, on_error
        self._pending: Snapshot | None = None
        self._cv = threading.Condition()
        self._closing = False
        self._busy = False
        self.written = self.skipped = self.failed = 0
        self.cpu_seconds = 0.0  # this thread's CPU time spent writing (for bench/idle_cpu.py)
        self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
        self._thread.start()

    def submit(self, snap: Snapshot) -> None:
        """Queue ``snap`` (it replaces one still waiting, except that a snapshot without positions
        never replaces one with them: the history keeps that one, the next tick's rounds follow)."""
        with self._cv:
            if self._pending is not None:
                self.skipped += 1
                if self._pending.positions and not snap.positions:
                    return
            self._pending = snap
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closing:
                    self._cv.wait()
                snap, self._pending = self._pending, None
                if snap is None:
                    return
                self._busy = True
            cpu = time.thread_time()
            try:
                record_snapshot(self.store, snap, kind=self.kind)
                self.written += 1
            except Exception as e:
                self.failed += 1
                if self.on_error is not None:
                    self.on_error(snap.block, e)
            finally:
                self.cpu_seconds += time.thread_time() - cpu
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every submitted snapshot is written (or dropped for a newer one)."""

        end = time.monotonic() + timeout
        with self._cv:
            while self._pending is not None or self._busy:
                left = end - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cv.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is waiting, then stop."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
