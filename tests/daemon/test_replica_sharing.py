"""Several leases shared among keeper replicas on a real PostgreSQL (``keeper.daemon.replica``): each
replica runs one process per chain (one ``ReplicaRole`` per lease, all under the replica's name) and
leads at most its fair share of the leases among the live replicas. A joining replica takes leases
from the busiest, between their quiet ticks; a replica that dies leaves its leases to the others once
they expire. Steps are driven by hand (no threads) so every hand-over is seen."""

from __future__ import annotations

import time

import pytest

from keeper.daemon.replica import ReplicaRole
from keeper.store import Store
from keeper.store.lease import Leases
from tests.store.conftest import drop_keeper_tables, pg_url  # noqa: F401 (the PostgreSQL fixture)

TTL = 1.0
NAMES = ("chain1:0xkey", "chain2:0xkey", "chain3:0xkey")


@pytest.fixture
def leases(pg_url):
    with Store.open(pg_url) as s:
        drop_keeper_tables(s)
    store = Store.open(pg_url)
    try:
        yield Leases(store)
    finally:
        with Store.open(pg_url) as s:
            drop_keeper_tables(s)
        store.close()


def replica(leases: Leases, holder: str, quiet: dict[str, bool] | None = None) -> list[ReplicaRole]:
    """One role per lease, as one replica's processes (one per chain) have."""
    return [ReplicaRole(leases, name, holder, TTL, may_hand_over=(lambda: quiet.get(holder, True)) if quiet else None)
            for name in NAMES]


def rounds(*replicas: list[ReplicaRole], n: int = 3) -> None:
    for _ in range(n):
        for roles in replicas:
            for r in roles:
                r.step()


def leaders(leases: Leases) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in NAMES:
        cur = leases.current(name)
        out[name] = cur[0].holder if cur is not None and cur[1] else None
    return out


def counts(leases: Leases) -> dict[str, int]:
    c: dict[str, int] = {}
    for h in leaders(leases).values():
        if h is not None:
            c[h] = c.get(h, 0) + 1
    return c


def believed(*replicas: list[ReplicaRole]) -> dict[str, str]:
    """Who each role thinks leads: never two for one lease."""
    out: dict[str, str] = {}
    for roles in replicas:
        for r in roles:
            if r.state().leading:
                assert r.name not in out, f"{r.name} led by {out[r.name]} and {r.holder}"
                out[r.name] = r.holder
    return out


def test_replicas_share_the_leases_as_they_join_and_leave(leases):
    a = replica(leases, "a")
    rounds(a)
    assert counts(leases) == {"a": 3}  # alone: it leads every chain

    b = replica(leases, "b")
    rounds(a, b)
    assert counts(leases) == {"a": 2, "b": 1}  # fair share ceil(3/2) = 2: a hands over its last lease
    assert leaders(leases)["chain3:0xkey"] == "b"
    assert believed(a, b) == leaders(leases)

    c = replica(leases, "c")
    rounds(a, b, c)
    assert counts(leases) == {"a": 1, "b": 1, "c": 1}
    assert believed(a, b, c) == leaders(leases)

    # c dies (no release, no heartbeat): once its lease and its heartbeat expire, a and b share all three
    gone = next(n for n, h in leaders(leases).items() if h == "c")
    time.sleep(TTL + 0.3)
    rounds(a, b, n=2)
    assert leaders(leases)[gone] in ("a", "b")
    assert sorted(counts(leases).values()) == [1, 2]
    assert believed(a, b) == leaders(leases)


def test_a_busy_leader_keeps_its_leases_until_a_quiet_tick(leases):
    quiet = {"a": False}
    a = replica(leases, "a", quiet)
    rounds(a)
    b = replica(leases, "b", quiet)
    rounds(a, b)
    assert counts(leases) == {"a": 3}  # a is acting: nothing is handed over in mid-crash
    quiet["a"] = True
    rounds(a, b)
    assert counts(leases) == {"a": 2, "b": 1}


def test_a_lease_nobody_takes_is_taken_by_a_replica_over_its_share(leases):
    """b leads two chains (its share), a leads one and stops renewing without dying (its heartbeat
    still says it is alive, so the share stays 2): after a time to live free, b takes it anyway."""
    a, b = replica(leases, "a"), replica(leases, "b")
    rounds(a, b)
    assert sorted(counts(leases).values()) == [1, 2]
    small = min(counts(leases), key=lambda h: counts(leases)[h])
    big = "b" if small == "a" else "a"
    small_roles, big_roles = (a, b) if small == "a" else (b, a)
    name = next(n for n, h in leaders(leases).items() if h == small)
    role = next(r for r in small_roles if r.name == name)
    role.stop(release=True)  # hands it over, keeps its heartbeat through its other roles (none here)
    small_roles.remove(role)
    for r in small_roles:  # the small replica's other processes keep heartbeating
        r.step()
    rounds(big_roles, n=1)
    assert leaders(leases)[name] is None  # free, but the big replica is at its share
    time.sleep(TTL + 0.2)
    for r in small_roles:
        r.step()
    rounds(big_roles, n=1)
    assert leaders(leases)[name] == big
