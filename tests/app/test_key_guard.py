"""One sender per key (``keeper.app.key_guard``) on the devnet's anvil: the journal accounts for every
nonce the keeper's key mines; a transaction of the key it never signed (a second keeper on another
store, a wallet) halts the keeper before it signs anything."""

import logging

import pytest
from sqlalchemy import text

from keeper.app.execution import execute
from keeper.app.key_guard import KeyGuard
from keeper.app.manual import find, manual_action, open_session
from keeper.chain.client import ChainClient
from keeper.chain.fees import GWEI, FeePolicy
from keeper.chain.keys import load_key
from keeper.chain.tx import TxRequest, TxSender
from keeper.errors import Halt, KeyShared
from keeper.store import Store
from keeper.store.journal import AttemptRecord, Decision, Journal
from tests.daemon.helpers import KEEPER_KEY, devnet_config

pytestmark = pytest.mark.usefixtures("snapshot")
POLICY = FeePolicy(min_priority_fee=1 * GWEI, max_priority_fee=2 * GWEI, max_fee_cap=500 * GWEI)
OTHER = "0x" + "ab" * 20


@pytest.fixture
def env(tmp_path, anvil):
    client = ChainClient("devnet", [anvil.url], 31337)
    key = load_key(env_var="K", chain_id=31337, environ={"K": KEEPER_KEY})
    store = Store.open(f"sqlite:///{tmp_path / 'j.db'}")
    journal = Journal(store)
    journal.sender = key.address
    yield client, key, journal, store
    store.close()


def mined(client, key) -> int:
    return int(client.request("eth_getTransactionCount", [key.address, "latest"]), 16)


def self_transfer(client, key) -> TxRequest:
    return TxRequest(key.address, b"", label="transfer")


def send(client, key, journal=None, n=[0]):  # noqa: B006 - a counter for unique decision keys
    """One transaction of the key, journaled as the pipeline does (before broadcast) or not at all."""
    n[0] += 1
    s = TxSender(client, key, 31337, POLICY, poll=0.05)
    if journal is not None:
        def on_signed(_out, a, k=f"test:{n[0]}"):
            b = a.bid
            rec = AttemptRecord(a.nonce, a.tx_hash, "0x" + a.raw.hex(), b.max_fee_per_gas, b.max_priority_fee_per_gas)
            journal.record_decisions("devnet", [Decision(k, "p", {"kind": "test"}, rec)])
        s.on_signed = on_signed
    return s.send(self_transfer(client, key))


def test_the_first_check_sets_the_mark_and_journaled_nonces_pass(env):
    client, key, journal, _store = env
    guard = KeyGuard(journal, client, "devnet", key.address)
    send(client, key)  # before this store knew the key: not judged
    guard.check()
    assert journal.nonce_mark("devnet", key.address) == mined(client, key)
    for _ in range(2):
        send(client, key, journal)
    guard.check()
    assert journal.nonce_mark("devnet", key.address) == mined(client, key)
    with journal.store.engine.connect() as conn:  # the entries carry the key that signed them
        assert {r[0] for r in conn.execute(text("SELECT sender FROM journal_entry"))} == {key.address}


def test_a_nonce_the_journal_never_signed_halts_naming_it(env):
    client, key, journal, _store = env
    guard = KeyGuard(journal, client, "devnet", key.address)
    guard.check()
    mark = mined(client, key)
    send(client, key, journal)
    send(client, key)  # another process with the key
    send(client, key, journal)
    with pytest.raises(KeyShared) as e:
        guard.check()
    assert isinstance(e.value, Halt) and e.value.exit_code == 6
    assert f"mined nonce {mark + 1} that this store's journal never signed" in str(e.value)
    assert "one PostgreSQL store" in str(e.value)
    assert journal.nonce_mark("devnet", key.address) == mark  # not accounted for: every later check halts too
    with pytest.raises(KeyShared):
        KeyGuard(journal, client, "devnet", key.address).check()


def test_another_keys_entries_do_not_cover_the_nonce(env):
    client, key, journal, _store = env
    guard = KeyGuard(journal, client, "devnet", key.address)
    guard.check()
    n = mined(client, key)
    journal.sender = OTHER  # a journal entry with the same nonce, signed by a former key
    journal.record_decisions("devnet", [Decision("old-key:1", "p", {}, AttemptRecord(n, "0x" + "01" * 32, "0x", 1, 1))])
    send(client, key)
    with pytest.raises(KeyShared, match=f"nonce {n} "):
        guard.check()


def test_a_count_below_the_mark_moves_it_down(env, caplog):
    client, key, journal, _store = env
    journal.set_nonce_mark("devnet", key.address, mined(client, key) + 50)  # e.g. a devnet restarted
    with caplog.at_level(logging.WARNING, logger="keeper.key_guard"):
        KeyGuard(journal, client, "devnet", key.address).check()
    assert journal.nonce_mark("devnet", key.address) == mined(client, key)
    assert "the mark moves down" in caplog.text


def test_two_keepers_on_two_stores_the_second_to_act_again_is_stopped(tmp_path, anvil, w3, devnet, monkeypatch):
    """``keeper rebalance --execute`` from two configs that share the key but not the store: the
    first acts, the second (a new store: the mark starts there) acts, then the first is stopped
    before it signs anything."""
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    cfg_a = devnet_config(tmp_path / "a", anvil.url, devnet, monkeypatch)
    cfg_b = devnet_config(tmp_path / "b", anvil.url, devnet, monkeypatch)
    keeper = devnet["roles"]["keeper"]

    def top_up(cfg):
        session = open_session(cfg, "devnet", vols={"WETH": 0.8})
        try:
            pos, book = find(session, f"{devnet['keeper_vaults']['alice']['address'][:10]}:aave")
            return execute(cfg, session, book, manual_action(session, pos, book, amount=0.01, asset="WETH"))
        finally:
            session.close()

    assert top_up(cfg_a).item.receipt().ok
    assert top_up(cfg_b).item.receipt().ok
    before = w3.eth.get_transaction_count(keeper)
    with pytest.raises(KeyShared, match=f"mined nonce {before - 1} that this store's journal never signed"):
        top_up(cfg_a)
    assert w3.eth.get_transaction_count(keeper) == before  # nothing signed, nothing sent
    with Store.open(cfg_a.store.url) as store:
        assert [e.status for e in Journal(store).entries("devnet")] == ["mined"]
