"""A keeper replica's role (``keeper run --replica NAME``, stage 13): leader or follower for its chain's
keeper key, by a lease in PostgreSQL (``keeper.store.lease``).

A thread keeps the lease: every ``ttl / 3`` it renews the lease it holds, or tries to take it when it
holds none (nobody holds it, or the holder's has expired). The tick asks :meth:`ReplicaRole.state` at
its start: a follower reads and plans like a leader but sends nothing (a dry run, warm for a
takeover); a new leader first reconciles the journal, then sends under its lease, which the journal
checks in every write (``Fence``): whatever a replica does after it lost the lease (paused past its
expiry, cut off from the database) is refused before anything is broadcast.

Takeover takes at most the lease's time to live plus one renewal period after the leader stops
renewing (killed, paused, partitioned), then the follower's next tick.

Several leases (several chains, or keys, each run by its own process per replica, all processes of
one replica under one name) are shared among the live replicas: each step also says this replica is
alive (``Leases.share``), and each replica should lead at most its fair share (the leases over the
live replicas, rounded up). A follower takes a free lease only while under its share, or once the
lease has stayed free a whole time to live (nobody under their share took it). A leader over its
share hands over the leases beyond it (its own, in name order), between two quiet ticks; it does
not retake a lease it handed over until that has stayed free a time to live. So a joining replica
gets leases from the busiest ones, and a leaving one's leases go to the others within its expiry."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from keeper.errors import KeeperError
from keeper.store.lease import Fence, Lease, Leases, Share

log = logging.getLogger("keeper.daemon")


@dataclass(frozen=True)
class RoleState:
    lease: Lease | None  # held and valid as of the last renewal: this replica leads
    takeovers: int  # leases taken (the first included): a change means reconcile before acting
    renewed_at: float | None = None  # time.monotonic() of the last renewal (or taking) while leading

    def lease_age(self, now: float) -> float | None:
        return None if self.lease is None or self.renewed_at is None else now - self.renewed_at

    @property
    def leading(self) -> bool:
        return self.lease is not None

    def fence(self) -> Fence | None:
        return Fence(self.lease.name, self.lease.holder, self.lease.epoch) if self.lease is not None else None


class ReplicaRole:
    def __init__(self, leases: Leases, name: str, holder: str, ttl_s: float,
                 on_change: Callable[[RoleState], None] | None = None, *,
                 may_hand_over: Callable[[], bool] | None = None) -> None:
        if not ttl_s > 0:
            raise ValueError("the lease's time to live must be positive")
        self.leases, self.name, self.holder, self.ttl_s = leases, name, holder, ttl_s
        self.on_change = on_change
        # whether a lease over the fair share may be handed over now (the keeper: between quiet ticks)
        self.may_hand_over = may_hand_over or (lambda: True)
        self._handed_over = False  # until the lease stays free a time to live, leave it to others
        self._lease: Lease | None = None
        self._takeovers = 0
        self._renewed_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def state(self) -> RoleState:
        with self._lock:
            return RoleState(self._lease, self._takeovers, self._renewed_at)

    def step(self) -> RoleState:
        """One renewal, or one attempt to take the lease; a database error counts as losing it (fail
        closed: the journal's fence refuses the writes anyway)."""
        with self._lock:
            held = self._lease
        try:
            share = self.leases.share(self.name, self.holder, self.ttl_s)
            got = self.leases.renew(held, self.ttl_s) if held is not None else None
            if got is not None and self._over(share) and self.may_hand_over():
                self.leases.release(got)
                log.warning(f"replica {self.holder} hands {self.name} over: it leads {len(share.mine)} of "
                            f"{share.leases} leases among {share.members} replicas (fair share {share.fair})",
                            extra={"event": "lease_handed_over", "lease": self.name})
                self._handed_over, got = True, None
            elif got is None and self._may_take(share):
                got = self.leases.acquire(self.name, self.holder, self.ttl_s)
                self._handed_over = self._handed_over and got is None
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
            self._renewed_at = time.monotonic() if got is not None else None
            state = RoleState(got, self._takeovers, self._renewed_at)
        if self.on_change is not None and (before is None) != (got is None):
            self.on_change(state)
        return state

    def _over(self, share: Share) -> bool:
        """Leading more than the fair share, and this lease is one of those beyond it."""
        return len(share.mine) > share.fair and self.name in share.mine[share.fair:]

    def _may_take(self, share: Share) -> bool:
        long_free = share.free_for is not None and share.free_for > self.ttl_s
        if self._handed_over:
            return long_free
        return len(share.mine) < share.fair or long_free

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
