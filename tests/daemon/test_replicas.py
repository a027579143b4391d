"""Two keeper replicas on one real PostgreSQL store and the devnet (``keeper run --replica``): the one
holding the lease acts, the other plans and sends nothing; when the leader stops renewing, the follower
takes over, reconciles the journal and acts on the next need; a leader that lost its lease without
knowing it (paused past its expiry) has every write refused by the journal's fence, so it sends
nothing. Ticks are driven by hand (automine); the lease threads run as in the daemon."""

from __future__ import annotations

import time

import pytest

from keeper.daemon.keeper import Keeper
from keeper.demo.faultlab import keeper_actions, per_position
from keeper.store import Store
from tests.daemon.helpers import VOLS, devnet_config, wait_for
from tests.devnet.helpers import set_price
from tests.store.conftest import drop_keeper_tables, pg_url  # noqa: F401 (the PostgreSQL fixture)

pytestmark = pytest.mark.usefixtures("snapshot")
TTL = 1.0


@pytest.fixture
def replicas(tmp_path, anvil, devnet, monkeypatch, pg_url):
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch)
    cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"url": pg_url}),
                                 "daemon": cfg.daemon.model_copy(update={"lease_ttl_seconds": TTL})})
    made = []
    try:
        for name in ("a", "b"):
            k = Keeper(cfg, vols=VOLS, replica=name)
            made.append(k)
            k.startup()
            if name == "a":
                wait_for(lambda k=k: k.role.state().leading, 5, "replica a to lead")
        yield made
    finally:
        for k in made:
            k.shutdown()
        with Store.open(pg_url) as s:
            drop_keeper_tables(s)


def sent_by_keeper(w3, devnet) -> int:
    return w3.eth.get_transaction_count(devnet["roles"]["keeper"])


def test_the_leader_acts_the_follower_takes_over_and_a_stale_leader_sends_nothing(replicas, w3, devnet):
    a, b = replicas
    assert a.role.state().leading and not b.role.state().leading
    start, nonce0 = w3.eth.block_number, sent_by_keeper(w3, devnet)
    alerts: list[tuple[str, str]] = []
    for k in (a, b):
        k.alerter.notify = lambda kind, severity, title, text="", k=k, **_f: alerts.append((k.role.holder, kind))

    # A crash step: the leader protects, the follower plans the same and sends nothing.
    set_price(w3, devnet, "ETH", 1_560)
    block = w3.eth.block_number
    assert b.tick(block) > 0  # planned (a follower's dry run)
    assert sent_by_keeper(w3, devnet) == nonce0
    assert a.tick(block) > 0
    first = sent_by_keeper(w3, devnet) - nonce0
    assert first > 0

    # a stops renewing (as if paused) but still believes it leads; b takes the lease once it lapses.
    a.role._stop.set()
    wait_for(lambda: b.role.state().leading, TTL * 3 + 2, "replica b to take over")
    assert b.role.state().lease.epoch == 2 and a.role.state().leading  # a's belief is now stale

    # The next step: b reconciles the journal (a's transactions are mined) and acts; a's writes are
    # refused by the fence, so a sends nothing.
    set_price(w3, devnet, "ETH", 1_380)
    block = w3.eth.block_number
    before = sent_by_keeper(w3, devnet)
    a.tick(block)
    assert sent_by_keeper(w3, devnet) == before  # the stale leader sent nothing
    assert b.tick(block) > 0
    assert sent_by_keeper(w3, devnet) > before
    # no position was acted on twice for one decision: a's refused decisions left nothing on chain
    counts = per_position(keeper_actions(w3, devnet, start))
    assert counts and max(counts.values()) <= 2  # at most once per crash step per position
    # who leads, since when, and the refusal, as an operator sees them
    assert ("b", "replica_takeover") in alerts and ("a", "replica_stale") in alerts
    assert [x for x in alerts if x == ("b", "replica_takeover")] == [("b", "replica_takeover")]
    sample = b.metrics.registry.get_sample_value
    assert sample("keeper_replica_leader", {"chain": "devnet"}) == 1
    assert 0 <= sample("keeper_replica_lease_age_seconds", {"chain": "devnet"}) <= TTL
    assert a.metrics.registry.get_sample_value("keeper_replica_stale_refusals_total", {"chain": "devnet"}) == 1
    a.tick(w3.eth.block_number)  # following now
    assert a.metrics.registry.get_sample_value("keeper_replica_lease_age_seconds", {"chain": "devnet"}) == -1
    time.sleep(0.1)


def test_replicas_need_postgresql_and_send(tmp_path, anvil, devnet, monkeypatch):
    """On the single-process SQLite store, or as a dry run, a replica is refused with what to do."""
    from keeper.errors import ConfigError

    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch)  # SQLite
    with pytest.raises(ConfigError, match="PostgreSQL") as e:
        Keeper(cfg, vols=VOLS, replica="a")
    assert "store.url" in str(e.value) + (e.value.hint or "")
    with pytest.raises(ConfigError, match="dry run"):
        Keeper(cfg, vols=VOLS, replica="a", dry_run=True)


def test_a_leader_cut_off_from_the_database_sends_nothing_and_the_other_takes_over(tmp_path, anvil, devnet,
                                                                                  monkeypatch, pg_url, w3):
    """Replica a reaches PostgreSQL through a TCP proxy; the test cuts it while a still believes it
    leads. a's journal cannot be written, so a sends nothing and follows (a replica's tick that loses
    its store halts nothing); b, on the database's side, takes over once a's lease lapses and acts."""
    from sqlalchemy.engine import make_url

    from keeper.app.executor import DryRun
    from keeper.demo.faultlab import CuttableProxy

    u = make_url(pg_url)
    assert u.host in ("127.0.0.1", "localhost", None)  # the fixture's server (the proxy forwards to loopback)
    proxy = CuttableProxy(u.port or 5432)
    cfg = devnet_config(tmp_path, anvil.url, devnet, monkeypatch)
    daemon = cfg.daemon.model_copy(update={"lease_ttl_seconds": TTL})
    via_proxy = u.set(port=proxy.port).render_as_string(hide_password=False)
    made = []
    try:
        for name, url in (("a", via_proxy), ("b", pg_url)):
            k = Keeper(cfg.model_copy(update={"store": cfg.store.model_copy(update={"url": url}), "daemon": daemon}),
                       vols=VOLS, replica=name)
            made.append(k)
            k.startup()
            if name == "a":
                wait_for(lambda k=k: k.role.state().leading, 5, "replica a to lead")
        a, b = made
        a.role._stop.set()  # a's belief that it leads is not refreshed from here
        proxy.cut()
        set_price(w3, devnet, "ETH", 1_560)
        block, before = w3.eth.block_number, sent_by_keeper(w3, devnet)
        a.tick(block)  # its journal is unreachable: it follows (plans, a dry run), and nothing is sent
        assert sent_by_keeper(w3, devnet) == before
        assert isinstance(a.executor, DryRun)
        wait_for(lambda: b.role.state().leading, TTL * 3 + 2, "replica b to take over")
        assert b.tick(block) > 0 and sent_by_keeper(w3, devnet) > before
        proxy.restore()
        assert a.role.step().leading is False  # back on the network: b leads, a follows
        after = sent_by_keeper(w3, devnet)
        a.tick(w3.eth.block_number)
        assert sent_by_keeper(w3, devnet) == after
    finally:
        for k in made:
            k.shutdown()
        proxy.close()
        with Store.open(pg_url) as s:
            drop_keeper_tables(s)


def test_a_takeover_does_not_plan_on_a_read_older_than_the_last_leaders_transactions(replicas, w3, devnet):
    """The leader journals its decisions and is cut off before it broadcasts them (as a partition in
    mid-batch does). The new leader's reconciliation re-sends them and they are mined after the block
    its tick read: acting on that read would repeat them, so it follows one more tick, then acts on a
    fresh read and finds nothing left to do."""
    from keeper.errors import KeeperError
    from keeper.store.journal import Journal

    a, b = replicas
    pipe = a._pipeline
    assert pipe is not None

    def cut(_batch):
        raise KeeperError("the broadcast never left (cut)")

    pipe._start = cut  # journaled, never broadcast
    nonce0 = sent_by_keeper(w3, devnet)
    set_price(w3, devnet, "ETH", 1_560)
    block = w3.eth.block_number
    with pytest.raises(KeeperError, match="never left"):
        a.tick(block)
    assert sent_by_keeper(w3, devnet) == nonce0
    with Store.open(b.cfg.store.url) as s:
        journaled = [e for e in Journal(s).entries("devnet") if e.status == "signed"]
    assert journaled

    a.role._stop.set()
    wait_for(lambda: b.role.state().leading, TTL * 3 + 2, "replica b to take over")
    w3.provider.make_request("evm_mine", [])
    read_at = block + 1  # a later block than a's decisions: a repeat would not share their idempotency keys
    b.tick(read_at)  # the reconciliation re-sends a's transactions, mined after `read_at`
    assert sent_by_keeper(w3, devnet) == nonce0 + len(journaled)
    with Store.open(b.cfg.store.url) as s:
        entries = Journal(s).entries("devnet")
    assert len(entries) == len(journaled) and all(e.status == "mined" for e in entries)

    b.tick(w3.eth.block_number)  # a fresh read shows them: nothing is repeated
    with Store.open(b.cfg.store.url) as s:
        again = Journal(s).entries("devnet")
    acted = [e.position_key for e in again]
    assert len(acted) == len(set(acted)), "a position acted on twice for one crash step"
