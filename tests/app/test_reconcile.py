"""Restart safety: whatever point the keeper stopped at, reconciliation neither repeats an action
nor loses one (simulated in-process crashes; the kill -9 trials come with the daemon)."""

import pytest

from keeper.app.reconcile import reconcile, wait_pending
from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.fees import GWEI, FeePolicy
from keeper.chain.keys import load_key
from keeper.chain.tx import TxRequest, TxSender
from keeper.store import Store
from keeper.store.journal import AttemptRecord, Journal
from tests.devnet.helpers import AAVE, asset_key

pytestmark = pytest.mark.usefixtures("snapshot")

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
POLICY = FeePolicy(min_priority_fee=1 * GWEI, max_priority_fee=2 * GWEI, max_fee_cap=500 * GWEI)


@pytest.fixture
def env(tmp_path, anvil, w3, devnet):
    client = ChainClient("devnet", [anvil.url], 31337)
    key = load_key(env_var="K", chain_id=31337, environ={"K": KEEPER_KEY})
    store = Store.open(f"sqlite:///{tmp_path / 'j.db'}")
    journal = Journal(store)
    vault = w3.eth.contract(address=devnet["keeper_vaults"]["alice"]["address"], abi=C.ours("KeeperVault").abi)
    weth = devnet["tokens"]["WETH"]["address"]
    ref = (AAVE, devnet["aave_v3"]["pool"], asset_key(weth), vault.address)
    req = TxRequest(vault.address, bytes.fromhex(vault.encode_abi("topUp", [ref, 10**18])[2:]), label="topUp")
    a_weth = w3.eth.contract(address=devnet["aave_v3"]["a_tokens"]["WETH"], abi=C.ours("TestERC20").abi)
    yield client, key, journal, req, lambda: a_weth.functions.balanceOf(vault.address).call()
    store.close()


def journaling_sender(client, key, journal, entry_id, broadcast=True):
    def on_signed(out, attempt):
        bid = attempt.bid
        journal.record_attempt(entry_id, AttemptRecord(attempt.nonce, attempt.tx_hash, "0x" + attempt.raw.hex(),
                                                       bid.max_fee_per_gas, bid.max_priority_fee_per_gas))
    s = TxSender(client, key, 31337, POLICY, on_signed=on_signed, poll=0.05)
    if not broadcast:
        s._broadcast = lambda attempt: (_ for _ in ()).throw(SystemExit("crash before broadcast"))
    return s


def nonce(client, key):
    return int(client.request("eth_getTransactionCount", [key.address, "latest"]), 16)


def test_crash_after_intent_before_signing_sends_nothing(env):
    client, key, journal, _req, balance = env
    eid = journal.record_intent("devnet", "alice:1:top_up", "alice", {"kind": "top_up"})
    n0, b0 = nonce(client, key), balance()
    report = reconcile(journal, client, "devnet", key.address)
    assert report.abandoned == [eid] and journal.get(eid).status == "abandoned"
    assert nonce(client, key) == n0 and balance() == b0


def test_crash_between_journal_write_and_send_is_sent_once(env):
    client, key, journal, req, balance = env
    eid = journal.record_intent("devnet", "alice:2:top_up", "alice", {"kind": "top_up"})
    n0, b0 = nonce(client, key), balance()
    with pytest.raises(SystemExit):
        journaling_sender(client, key, journal, eid, broadcast=False).send(req)
    assert nonce(client, key) == n0  # the signed transaction never left
    report = reconcile(journal, client, "devnet", key.address)
    assert report.rebroadcast == [eid]
    settled = wait_pending(journal, client, "devnet", key.address, sleep=lambda _s: None)
    assert settled.mined == [eid]
    assert nonce(client, key) == n0 + 1 and balance() >= b0 + 10**18 - 1
    # A second restart finds nothing to do.
    again = reconcile(journal, client, "devnet", key.address)
    assert again.pending == [] and again.mined == [] and nonce(client, key) == n0 + 1


def test_crash_after_send_before_receipt_is_not_repeated(env):
    client, key, journal, req, balance = env
    eid = journal.record_intent("devnet", "alice:3:top_up", "alice", {"kind": "top_up"})
    n0, b0 = nonce(client, key), balance()
    sender = journaling_sender(client, key, journal, eid)
    sender._receipt = lambda h: (_ for _ in ()).throw(SystemExit("crash before the receipt"))
    with pytest.raises(SystemExit):
        sender.send(req)
    report = reconcile(journal, client, "devnet", key.address)
    assert report.mined == [eid] and report.rebroadcast == []
    assert nonce(client, key) == n0 + 1 and balance() >= b0 + 10**18 - 1


def test_nonce_taken_by_another_transaction_is_failed(env, w3):
    client, key, journal, req, _balance = env
    eid = journal.record_intent("devnet", "alice:4:top_up", "alice", {"kind": "top_up"})
    with pytest.raises(SystemExit):
        journaling_sender(client, key, journal, eid, broadcast=False).send(req)
    # Someone else spends the nonce from the same key (a plain transfer, sent by the node).
    w3.eth.send_transaction({"from": key.address, "to": key.address, "value": 1})
    report = reconcile(journal, client, "devnet", key.address)
    assert report.failed == [eid] and "another transaction" in journal.get(eid).error


def test_an_entry_found_mined_after_the_planned_block_stops_that_plan(env, w3):
    """A run's journal check settles an open entry whose transaction was mined after the block the
    run read: the plan on that read cannot see it, so nothing new is sent on it."""
    from keeper.app.execution import settle_journal_first
    from keeper.errors import TemporaryError

    client, key, journal, req, _balance = env
    read_at = w3.eth.block_number
    eid = journal.record_intent("devnet", "alice:5:top_up", "alice", {"kind": "top_up"})
    sender = journaling_sender(client, key, journal, eid)
    sender._receipt = lambda h: (_ for _ in ()).throw(SystemExit("crash before the receipt"))
    with pytest.raises(SystemExit):
        sender.send(req)  # mined at read_at + 1, its outcome never journaled
    with pytest.raises(TemporaryError, match=f"mined after block {read_at}"):
        settle_journal_first(journal, client, "devnet", key.address, read_at)
    assert journal.get(eid).status == "mined" and journal.get(eid).mined_block == read_at + 1
    settle_journal_first(journal, client, "devnet", key.address, read_at + 1)  # a fresh read: go on
