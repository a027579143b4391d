"""A decision whose journal entry ended without anything signed (abandoned after a crash before
the journal write, or failed before signing) may be taken again — nothing of it can land — while
a decision with a signed transaction never can (that is what would double an action)."""

import pytest

from keeper.store import Store
from keeper.store.journal import AttemptRecord, DuplicateIntent, Journal


@pytest.fixture
def journal(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'j.db'}")
    yield Journal(store)
    store.close()


@pytest.mark.parametrize("status", ["abandoned", "failed"])
def test_an_unsigned_decision_is_retried_in_its_own_entry(journal, status):
    eid = journal.record_intent("dev", "k", "p", {"try": 1})
    journal.record_outcome(eid, status, error="never signed")
    again = journal.record_intent("dev", "k", "p", {"try": 2})
    e = journal.get(again)
    assert again == eid and e.status == "intent" and e.action == {"try": 2} and e.error is None
    assert len(journal.entries("dev")) == 1


@pytest.mark.parametrize("outcome", [None, "mined", "reverted", "failed", "abandoned"])
def test_a_signed_decision_is_never_taken_again(journal, outcome):
    eid = journal.record_intent("dev", "k", "p", {})
    journal.record_attempt(eid, AttemptRecord(3, "0xaa", "0x01", 10, 1))
    if outcome:
        journal.record_outcome(eid, outcome, mined_hash="0xaa" if outcome in ("mined", "reverted") else None)
    with pytest.raises(DuplicateIntent):
        journal.record_intent("dev", "k", "p", {})


def test_an_open_intent_is_not_taken_twice(journal):
    journal.record_intent("dev", "k", "p", {})
    with pytest.raises(DuplicateIntent):
        journal.record_intent("dev", "k", "p", {})
