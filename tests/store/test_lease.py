"""Leader leases and fencing (``keeper.store.lease``) on a real PostgreSQL: one holder at a time, an epoch
that only grows, expiry by the database's clock, and a journal that refuses a stale leader's writes,
including one that races a takeover (the takeover waits for the write's lock, then fences it off).
SQLite refuses leases; v3 and v4 databases migrate to the current schema."""

from __future__ import annotations

import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from keeper.errors import ConfigError
from keeper.store import Store
from keeper.store.journal import AttemptRecord, Journal
from keeper.store.lease import Fence, Leases, StaleLeader, check_fence, lease_name
from keeper.store.migrations import SCHEMA_VERSION
from tests.store.conftest import drop_keeper_tables
from tests.store.test_store import schema_of

TTL = 0.4  # seconds: short, so the tests can watch leases expire


@pytest.fixture
def pg(pg_url):
    store = Store.open(pg_url)
    try:
        yield store
    finally:
        drop_keeper_tables(store)
        store.close()


def test_one_holder_at_a_time_and_the_epoch_only_grows(pg):
    leases, name = Leases(pg), lease_name("devnet", "0xABCD")
    assert name == "devnet:0xabcd"
    a = leases.acquire(name, "a", TTL)
    assert a is not None and (a.holder, a.epoch) == ("a", 1)
    assert leases.acquire(name, "b", TTL) is None  # a's, still valid
    again = leases.acquire(name, "a", TTL)  # a holder asking again keeps its epoch
    assert again is not None and again.epoch == 1 and again.expires_at >= a.expires_at
    renewed = leases.renew(a, TTL)
    assert renewed is not None and renewed.epoch == 1
    time.sleep(TTL + 0.2)
    assert leases.current(name) == (renewed, False)  # expired (by the database's clock)
    assert leases.renew(renewed, TTL) is None  # too late: acquire again
    b = leases.acquire(name, "b", TTL)
    assert b is not None and (b.holder, b.epoch) == ("b", 2)
    assert leases.acquire(name, "a", TTL) is None and leases.renew(renewed, TTL) is None
    leases.release(b)  # a clean hand-over: free at once
    a2 = leases.acquire(name, "a", TTL)
    assert a2 is not None and a2.epoch == 3
    time.sleep(TTL + 0.2)
    a3 = leases.acquire(name, "a", TTL)  # its own lease, expired: retaken under a new epoch
    assert a3 is not None and a3.epoch == 4


def test_of_many_racing_replicas_exactly_one_leads(pg):
    leases = Leases(pg)
    start = threading.Barrier(8)

    def race(i: int):
        start.wait()
        return leases.acquire("devnet:race", f"r{i}", 5.0)

    with ThreadPoolExecutor(8) as pool:
        got = [g for g in pool.map(race, range(8)) if g is not None]
    assert len(got) == 1 and got[0].epoch == 1
    current, valid = leases.current("devnet:race")
    assert valid and current.holder == got[0].holder


def test_the_journal_refuses_a_stale_leaders_writes(pg):
    leases, name = Leases(pg), "devnet:0xkeeper"
    a = leases.acquire(name, "a", TTL)
    ja = Journal(pg)
    ja.fence = Fence(name, "a", a.epoch)
    eid = ja.record_intent("devnet", "k1", "p", {"kind": "top_up"})
    ja.record_attempt(eid, AttemptRecord(7, "0xaa", "0x01", 10, 1))
    with pg.engine.connect() as conn:
        assert conn.execute(text("SELECT epoch FROM journal_entry WHERE id = :i"), {"i": eid}).scalar_one() == 1
    time.sleep(TTL + 0.2)
    with pytest.raises(StaleLeader, match="expired"):  # nobody took over yet, but a's lease has run out
        ja.record_intent("devnet", "k2", "p", {})
    b = leases.acquire(name, "b", TTL)
    assert b is not None and b.epoch == 2
    for write in (lambda: ja.record_intent("devnet", "k3", "p", {}),
                  lambda: ja.record_attempt(eid, AttemptRecord(7, "0xbb", "0x02", 12, 2)),
                  lambda: ja.record_outcome(eid, "abandoned", error="stale")):
        with pytest.raises(StaleLeader, match="b's at epoch 2, not a's at epoch 1"):
            write()
    jb = Journal(pg)
    jb.fence = Fence(name, "b", b.epoch)
    assert [e.idempotency_key for e in jb.entries("devnet")] == ["k1"]  # nothing of a's after it lost the lease
    assert [a.tx_hash for a in jb.get(eid).attempts] == ["0xaa"]
    jb.record_outcome(eid, "mined", mined_hash="0xaa", mined_block=9)
    assert Journal(pg).get(eid).status == "mined"


def test_a_takeover_waits_for_a_write_in_flight_then_fences_what_follows(pg):
    """a holds the lease row's lock in a journal transaction while its lease expires; b's takeover
    waits for that transaction, so a's write commits whole and is there for b to reconcile, and a's
    next write is refused."""
    leases, name = Leases(pg), "devnet:0xinflight"
    a = leases.acquire(name, "a", TTL)
    fence = Fence(name, "a", a.epoch)
    in_txn, taken_at = threading.Event(), []

    def takeover():
        in_txn.wait()
        while True:  # until the lease has expired, then blocked on a's lock
            got = leases.acquire(name, "b", TTL)
            if got is not None:
                taken_at.append((time.monotonic(), got.epoch))
                return
            time.sleep(0.05)

    t = threading.Thread(target=takeover)
    t.start()
    with pg.write() as conn:
        check_fence(conn, fence)  # the lock is a's from here to the commit
        in_txn.set()
        time.sleep(TTL + 0.5)  # a is paused mid-write, past its expiry
        conn.execute(text("INSERT INTO journal_entry (chain, idempotency_key, position_key, action, status, "
                          "attempts, created_at, updated_at, epoch) VALUES ('devnet', 'k-inflight', 'p', '{}', "
                          "'intent', '[]', 0, 0, :e)"), {"e": fence.epoch})
        committed_at = time.monotonic()
    t.join(10)
    assert taken_at and taken_at[0][0] >= committed_at and taken_at[0][1] == 2
    j = Journal(pg)
    assert [e.idempotency_key for e in j.entries("devnet")] == ["k-inflight"]  # b's reconciliation sees it
    j.fence = fence
    with pytest.raises(StaleLeader):
        j.record_intent("devnet", "k-after", "p", {})


def test_sqlite_refuses_leases(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'k.db'}") as s, pytest.raises(ConfigError, match="PostgreSQL"):
        Leases(s)


NEWER = {  # what each schema version added, undone
    5: "DROP TABLE key_nonce; DROP TABLE replica_member; ALTER TABLE journal_entry DROP COLUMN sender; ",
    4: "DROP TABLE lease; ALTER TABLE journal_entry DROP COLUMN epoch; ",
}
BACK_TO = {v: "".join(NEWER[n] for n in sorted(NEWER) if n > v) + f"UPDATE schema_version SET version = {v};"
           for v in (3, 4)}


@pytest.mark.parametrize("version", sorted(BACK_TO))
def test_v3_and_v4_databases_migrate_to_the_current_schema(tmp_path, version):
    path = tmp_path / f"v{version}.db"
    Store.open(f"sqlite:///{path}").close()
    con = sqlite3.connect(path)
    con.executescript(BACK_TO[version])
    con.commit()
    con.close()
    with Store.open(f"sqlite:///{path}") as s, Store.open(f"sqlite:///{tmp_path / 'fresh.db'}") as fresh:
        assert (s.upgraded_from, s.version) == (version, SCHEMA_VERSION) == (version, 5)
        assert schema_of(s.engine) == schema_of(fresh.engine)
