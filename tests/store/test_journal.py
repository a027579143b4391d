"""The action journal: intents are unique, attempts are kept in order, outcomes close entries."""

import pytest

from tests.store.conftest import drop_keeper_tables

from keeper.store import Store
from keeper.store.journal import AttemptRecord, DuplicateIntent, Journal


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
