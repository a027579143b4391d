"""The action journal: intents are unique, attempts are kept in order, outcomes close entries."""

import pytest

from keeper.store import Store
from keeper.store.journal import AttemptRecord, DuplicateIntent, Journal
from tests.store.conftest import drop_keeper_tables


@pytest.fixture
def journal(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'j.db'}") as s:
        yield Journal(s, clock=lambda: 1000.0)


def test_intent_attempts_outcome(journal):
    eid = journal.record_intent("dev", "pos-1:epoch-7:top_up", "pos-1", {"kind": "top_up", "amount": 10**30})
    assert [e.id for e in journal.open_entries("dev")] == [eid]
    journal.record_attempt(eid, AttemptRecord(3, "0xaa", "0x01", 10, 1))
    journal.record_attempt(eid, AttemptRecord(3, "0xbb", "0x02", 12, 2))
    e = journal.get(eid)
    assert e.status == "signed" and e.nonce == 3 and [a.tx_hash for a in e.attempts] == ["0xaa", "0xbb"]
    assert e.action["amount"] == 10**30  # JSON keeps big integers exact
    journal.record_outcome(eid, "mined", mined_hash="0xbb", mined_block=55)
    assert journal.open_entries("dev") == []
    assert journal.get(eid).mined_hash == "0xbb"


def test_the_same_decision_cannot_be_journaled_twice(journal):
    journal.record_intent("dev", "k", "p", {})
    with pytest.raises(DuplicateIntent):
        journal.record_intent("dev", "k", "p", {})
    assert len(journal.entries("dev")) == 1


def test_no_attempt_after_an_outcome(journal):
    eid = journal.record_intent("dev", "k2", "p", {})
    journal.record_outcome(eid, "abandoned", error="not sent before a restart")
    with pytest.raises(Exception, match="abandoned"):
        journal.record_attempt(eid, AttemptRecord(1, "0x", "0x", 1, 1))
    with pytest.raises(ValueError):
        journal.record_outcome(eid, "signed")


def test_journal_on_postgresql(pg_url):
    s = Store.open(pg_url)
    try:
        j = Journal(s)
        eid = j.record_intent("pg", "pg:k:1", "p", {"amount": 2**200})
        with pytest.raises(DuplicateIntent):
            j.record_intent("pg", "pg:k:1", "p", {})
        j.record_attempt(eid, AttemptRecord(7, "0xaa", "0x01", 10, 1))
        assert j.get(eid).action["amount"] == 2**200 and j.open_entries("pg")[0].nonce == 7
    finally:
        drop_keeper_tables(s)
        s.close()


def _decisions(prefix: str, n: int, refused: set[int] = frozenset()):
    from keeper.store.journal import Decision

    return [Decision(f"{prefix}:{i}", f"pos-{i}", {"kind": "top_up", "amount_raw": 10**24 + i},
                     None if i in refused else AttemptRecord(40 + i, f"0x{i:064x}", f"0x02{i:04x}", 10, 1),
                     "would revert: HealthBelowFloor" if i in refused else None) for i in range(n)]


def _batch_round_trip(j: Journal, chain: str) -> None:
    ids = j.record_decisions(chain, _decisions(chain, 6, refused={2}))
    assert len(set(ids)) == 6
    entries = {e.id: e for e in j.entries(chain)}
    for i, eid in enumerate(ids):  # ids come back in the order of the decisions
        e = entries[eid]
        assert e.idempotency_key == f"{chain}:{i}" and e.action["amount_raw"] == 10**24 + i
        if i == 2:
            assert e.status == "failed" and e.attempts == () and e.nonce is None and "HealthBelowFloor" in e.error
        else:
            assert e.status == "signed" and e.nonce == 40 + i and e.attempts[0].tx_hash == f"0x{i:064x}"
    assert [e.id for e in j.open_entries(chain)] == [eid for i, eid in enumerate(ids) if i != 2]
    # several mined at once, in one commit: each gets its own hash and block, the rest stay open
    j.record_mined([(ids[0], "0x" + "a0" * 32, 70), (ids[4], "0x" + "a4" * 32, 71)])
    entries = {e.id: e for e in j.entries(chain)}
    assert (entries[ids[0]].status, entries[ids[0]].mined_hash, entries[ids[0]].mined_block) == \
        ("mined", "0x" + "a0" * 32, 70)
    assert (entries[ids[4]].status, entries[ids[4]].mined_hash, entries[ids[4]].mined_block) == \
        ("mined", "0x" + "a4" * 32, 71)
    assert [e.id for e in j.open_entries(chain)] == [ids[1], ids[3], ids[5]]
    j.record_mined([])  # nothing: no write


def test_a_batch_of_decisions_in_one_transaction(journal):
    _batch_round_trip(journal, "dev")


def test_taken_keys_and_retrying_a_refused_decision(journal):
    ids = journal.record_decisions("dev", _decisions("b", 3, refused={1}))
    # mined, refused before signing (retryable), and signed-but-open decisions
    journal.record_outcome(ids[0], "mined", mined_hash="0x01", mined_block=9)
    assert journal.taken(["b:0", "b:1", "b:2", "b:new"]) == {"b:0", "b:2"}
    again = journal.record_decisions("dev", [d for d in _decisions("b", 2) if d.idempotency_key == "b:1"])
    assert again == [ids[1]]  # the same entry, now signed
    assert journal.get(ids[1]).status == "signed" and journal.get(ids[1]).nonce == 41


def test_a_duplicate_fails_the_whole_batch(journal):
    journal.record_decisions("dev", _decisions("c", 1))
    with pytest.raises(DuplicateIntent):
        journal.record_decisions("dev", _decisions("c", 3))  # c:0 is signed already
    assert len(journal.entries("dev")) == 1  # c:1 and c:2 were not journaled either
    with pytest.raises(ValueError):
        journal.record_decisions("dev", _decisions("d", 1) * 2)


def test_batch_on_postgresql(pg_url):
    s = Store.open(pg_url)
    try:
        _batch_round_trip(Journal(s), "pgb")
    finally:
        drop_keeper_tables(s)
        s.close()


def test_taken_at_block_reads_the_daemon_keys_of_one_block(journal):
    from keeper.store.journal import Decision

    def d(key, signed=True):
        attempt = AttemptRecord(1, "0x1", "0x2", 1, 1) if signed else None
        return Decision(key, "p", {}, attempt, None if signed else "no")

    journal.record_decisions("dev", [d("daemon:aave:0xab:12:top_up:5"), d("daemon:aave:0xab:123:top_up:5"),
                                     d("daemon:morpho:0xcd:12:repay:7", signed=False),
                                     d("manual:aave:0xab:12:top_up:5")])
    assert journal.taken_at_block("daemon", 12) == {"daemon:aave:0xab:12:top_up:5"}  # the refused one may be retried
    assert journal.taken_at_block("daemon", 123) == {"daemon:aave:0xab:123:top_up:5"}
    assert journal.taken_at_block("daemon", 1) == set()


def test_journal_writes_wait_for_a_concurrent_writer_instead_of_failing(tmp_path):
    """Found by the soak: the daemon journals a batch (read the keys, then insert) while the snapshot
    writer commits ticks; a deferred SQLite transaction that has read cannot become a writer after
    another connection's commit ("database is locked"). Write transactions begin IMMEDIATE."""
    import threading

    from keeper.store.journal import Decision

    with Store.open(f"sqlite:///{tmp_path / 'race.db'}") as store:
        journal = Journal(store)
        stop = threading.Event()

        def snapshots() -> None:
            n = 0
            while not stop.is_set():
                store.write_tick("dev", n, "0x00", [])
                n += 1

        t = threading.Thread(target=snapshots)
        t.start()
        try:
            for i in range(150):
                journal.record_decisions("dev", [Decision(f"k{i}", "p", {}, AttemptRecord(i, "0x1", "0x2", 1, 1))])
        finally:
            stop.set()
            t.join()
        assert len(journal.entries("dev")) == 150
