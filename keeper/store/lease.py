"""Leader leases for keeper replicas, in PostgreSQL (stage 13): one row per lease name (a chain and a
keeper key: ``lease_name``) holding who leads, an epoch that only grows, and when the lease expires.

Time is the database's (``clock_timestamp()``), never a replica's, so hosts whose clocks disagree
still agree on who leads. The rules, each one SQL statement:

- ``acquire``: take the lease if nobody holds it or it has expired, with the epoch one higher (a
  replica retaking its own expired lease gets a new epoch too: whatever it started under the old one
  is fenced off). A holder whose lease is still valid keeps it (renewed, same epoch).
- ``renew``: push the expiry out, only while the lease is still this holder's, at this epoch, and
  not yet expired: a replica that was paused past its expiry must acquire again, and learns there
  whether another took over.
- ``release``: expire it now (a clean shutdown hands over at once).

Fencing (``Fence``, used by ``keeper.store.journal``): a write made under a lease checks, in its own
transaction and holding the lease row's lock (``FOR UPDATE``), that the lease is still this holder's
at this epoch and unexpired, and records the epoch with what it writes. A takeover's ``acquire``
waits for that lock, so a journal write either commits before the takeover (the new leader's start-up
reconciliation then sees it) or is refused (``StaleLeader``); since nothing is broadcast before it is
journaled, a leader that lost its lease never sends.

SQLite has no row locks across processes and stays the single-process store: leases are refused
there (``ConfigError``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from keeper.errors import ConfigError, KeeperError
from keeper.store.db import Store, _translated

_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"


class StaleLeader(KeeperError):
    """A write under a lease that is no longer this holder's (another epoch, or expired): refused."""


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    epoch: int
    expires_at: float  # the database's clock, seconds since 1970


@dataclass(frozen=True)
class Fence:
    """What a leader's writes must still hold: its lease, at its epoch."""

    name: str
    holder: str
    epoch: int


@dataclass(frozen=True)
class Share:
    """How the leases stand among the live replicas, as one replica sees them (``Leases.share``)."""

    members: int  # live replicas (heard from within the lease's time to live), this one included
    leases: int  # lease names ever taken
    mine: tuple[str, ...]  # the names this replica's holder leads now, sorted
    free_for: float | None  # seconds the asked-about lease has been free (expired); None while held

    @property
    def fair(self) -> int:
        """How many leases each live replica should lead: the total over the members, rounded up."""
        return max(1, -(-self.leases // max(self.members, 1)))


def lease_name(chain: str, keeper_address: str) -> str:
    return f"{chain}:{keeper_address.lower()}"


class Leases:
    """The leases of one store (PostgreSQL only)."""

    def __init__(self, store: Store) -> None:
        if store.engine.dialect.name != "postgresql":
            raise ConfigError(f"replicas need a PostgreSQL store (store.url is {store.url})",
                              hint="SQLite serves one keeper process; point store.url at PostgreSQL to run replicas")
        self.store = store

    def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        """The lease for ``holder`` (taken, retaken after an expiry with a new epoch, or renewed while
        still valid), or None while another holds it unexpired."""
        if not ttl_s > 0:
            raise ValueError("a lease needs a positive time to live")
        with _translated(f"acquiring lease {name}"), self.store.write() as conn:
            row = conn.execute(text(
                f"INSERT INTO lease (name, holder, epoch, expires_at) VALUES (:n, :h, 1, {_NOW} + :ttl) "
                "ON CONFLICT (name) DO UPDATE SET "
                f"  epoch = CASE WHEN lease.holder = :h AND lease.expires_at > {_NOW} THEN lease.epoch "
                "               ELSE lease.epoch + 1 END, "
                f"  holder = :h, expires_at = {_NOW} + :ttl "
                f"WHERE lease.holder = :h OR lease.expires_at <= {_NOW} "
                "RETURNING name, holder, epoch, expires_at"), {"n": name, "h": holder, "ttl": ttl_s}).first()
        return Lease(row.name, row.holder, int(row.epoch), float(row.expires_at)) if row is not None else None

    def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        """``lease`` pushed out by ``ttl_s`` from now, or None when it is no longer held as it was
        (expired, or another epoch): the holder must ``acquire`` again."""
        with _translated(f"renewing lease {lease.name}"), self.store.write() as conn:
            row = conn.execute(text(
                f"UPDATE lease SET expires_at = {_NOW} + :ttl "
                f"WHERE name = :n AND holder = :h AND epoch = :e AND expires_at > {_NOW} "
                "RETURNING expires_at"), {"n": lease.name, "h": lease.holder, "e": lease.epoch, "ttl": ttl_s}).first()
        return Lease(lease.name, lease.holder, lease.epoch, float(row.expires_at)) if row is not None else None

    def release(self, lease: Lease) -> None:
        """Expire ``lease`` now if it is still held as it was (a clean hand-over)."""
        with _translated(f"releasing lease {lease.name}"), self.store.write() as conn:
            conn.execute(text(f"UPDATE lease SET expires_at = {_NOW} "
                              "WHERE name = :n AND holder = :h AND epoch = :e"),
                         {"n": lease.name, "h": lease.holder, "e": lease.epoch})

    def share(self, name: str, holder: str, ttl_s: float) -> Share:
        """Say ``holder`` is alive (its heartbeat) and read how the leases stand, in one transaction:
        the live replicas, the lease names, those ``holder`` leads, and how long ``name`` has been free."""
        with _translated("reading the replicas' shares"), self.store.write() as conn:
            conn.execute(text(f"INSERT INTO replica_member (holder, seen_at) VALUES (:h, {_NOW}) "
                              f"ON CONFLICT (holder) DO UPDATE SET seen_at = {_NOW}"), {"h": holder})
            members = conn.execute(text(f"SELECT count(*) FROM replica_member WHERE seen_at > {_NOW} - :ttl"),
                                   {"ttl": ttl_s}).scalar_one()
            rows = conn.execute(text(f"SELECT name, holder, expires_at > {_NOW} AS valid, "
                                     f"{_NOW} - expires_at AS free_for FROM lease ORDER BY name")).all()
        mine = tuple(r.name for r in rows if r.holder == holder and r.valid)
        this = next((r for r in rows if r.name == name), None)
        free_for = None if this is not None and this.valid else (float(this.free_for) if this is not None else 1e9)
        return Share(int(members), len(rows) + (this is None), mine, free_for)

    def current(self, name: str) -> tuple[Lease, bool] | None:
        """The lease row and whether it is still valid, or None when nobody ever took it."""
        with _translated(f"reading lease {name}"), self.store.engine.connect() as conn:
            row = conn.execute(text(f"SELECT name, holder, epoch, expires_at, expires_at > {_NOW} AS valid "
                                    "FROM lease WHERE name = :n"), {"n": name}).first()
        if row is None:
            return None
        return Lease(row.name, row.holder, int(row.epoch), float(row.expires_at)), bool(row.valid)


def check_fence(conn: Connection, fence: Fence) -> None:
    """Inside a write transaction: hold the lease row's lock and refuse (``StaleLeader``) unless the
    lease is still ``fence``'s holder's, at its epoch, unexpired."""
    row = conn.execute(text(f"SELECT holder, epoch, expires_at > {_NOW} AS valid FROM lease "
                            "WHERE name = :n FOR UPDATE"), {"n": fence.name}).first()
    if row is None:
        raise StaleLeader(f"lease {fence.name} does not exist: {fence.holder} does not lead")
    if row.holder != fence.holder or int(row.epoch) != fence.epoch:
        raise StaleLeader(f"lease {fence.name} is {row.holder}'s at epoch {row.epoch}, not {fence.holder}'s at "
                          f"epoch {fence.epoch}: refused")
    if not row.valid:
        raise StaleLeader(f"lease {fence.name} (epoch {fence.epoch}) has expired: {fence.holder} must renew it "
                          "before writing")
