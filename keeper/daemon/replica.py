"""A keeper replica's role (``keeper run --replica NAME``, stage 13): leader or follower for its chain's
keeper key, by a lease in PostgreSQL (``keeper.store.lease``).

A thread keeps the lease: every ``ttl / 3`` it renews the lease it holds, or tries to take it when it
holds none (nobody holds it, or the holder's has expired). The tick asks :meth:`ReplicaRole.state` at
its start: a follower reads and plans like a leader but sends nothing (a dry run, warm for a
takeover); a new leader first reconciles the journal, then sends under its lease, which the journal
checks in every write (``Fence``): whatever a replica does after it lost the lease (paused past its
expiry, cut off from the database) is refused before anything is broadcast.

Takeover takes at most the lease's time to live plus one renewal period after the leader stops
renewing (killed, paused, partitioned), then the follower's next tick."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from keeper.errors import KeeperError
from keeper.store.lease import Fence, Lease, Leases

log = logging.getLogger("keeper.daemon")


@dataclass(frozen=True)
class RoleState:
    lease: Lease | None  # held and valid as of the last renewal: this replica leads
    takeovers: int  # leases taken (the first included): a change means reconcile before acting

    @property
    def leading(self) -> bool:
        return self.lease is not None

    def fence(self) -> Fence | None:
        return Fence(self.lease.name, self.lease.holder, self.lease.epoch) if self.lease is not None else None


class ReplicaRole:
    def __init__(self, leases: Leases, name: str, holder: str, ttl_s: float,
                 on_change: Callable[[RoleState], None] | None = None) -> None:
        if not ttl_s > 0:
            raise ValueError("the lease's time to live must be positive")
        self.leases, self.name, self.holder, self.ttl_s = leases, name, holder, ttl_s
        self.on_change = on_change
        self._lease: Lease | None = None
        self._takeovers = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state(self) -> RoleState:
        with self._lock:
            return RoleState(self._lease, self._takeovers)

    def step(self) -> RoleState:
        """One renewal, or one attempt to take the lease; a database error counts as losing it (fail
        closed: the journal's fence refuses the writes anyway)."""
        with self._lock:
            held = self._lease
        try:
            got = self.leases.renew(held, self.ttl_s) if held is not None else None
            if got is None:
                got = self.leases.acquire(self.name, self.holder, self.ttl_s)
        except KeeperError as e:
            log.warning(f"replica {self.holder}: lease {self.name} unreachable ({e}): following",
                        extra={"event": "lease_error", "lease": self.name})
            got = None
        with self._lock:
            before = self._lease
            if got is not None and (before is None or got.epoch != before.epoch):
                self._takeovers += 1
                log.warning(f"replica {self.holder} leads {self.name} (epoch {got.epoch})",
                            extra={"event": "lease_taken", "lease": self.name, "epoch": got.epoch})
            elif got is None and before is not None:
                log.warning(f"replica {self.holder} lost {self.name} (epoch {before.epoch}): following",
                            extra={"event": "lease_lost", "lease": self.name, "epoch": before.epoch})
            self._lease = got
            state = RoleState(got, self._takeovers)
        if self.on_change is not None and (before is None) != (got is None):
            self.on_change(state)
        return state

    def start(self) -> None:
        self.step()
        self._thread = threading.Thread(target=self._loop, name="keeper-lease", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        period = self.ttl_s / 3
        while not self._stop.wait(period):
            started = time.monotonic()
            self.step()
            if time.monotonic() - started > period:
                log.warning(f"replica {self.holder}: renewing lease {self.name} took longer than {period:.2f} s",
                            extra={"event": "lease_slow", "lease": self.name})

    def stop(self, release: bool = True) -> None:
        """Stop renewing; ``release``: hand the lease over at once (a clean shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl_s + 5)
        with self._lock:
            held, self._lease = self._lease, None
        if release and held is not None:
            try:
                self.leases.release(held)
            except KeeperError as e:
                log.warning(f"replica {self.holder}: releasing {self.name} failed ({e}); it expires on its own",
                            extra={"event": "lease_release_failed", "lease": self.name})
