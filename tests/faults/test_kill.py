"""kill -9 of the daemon at each point of the send lifecycle (``KEEPER_FAULT``), then recovery as an
operator does it (``keeper reconcile``, then the daemon again): every position that needed a
protective action gets exactly one on chain, and the journal records each one (no lost intent)."""

import pytest

from keeper.faults import POINTS
from keeper.store import Store
from keeper.store.journal import Journal
from tests.devnet.helpers import set_price
from tests.faults.conftest import head, keeper_actions, per_position, planned_positions, wait_for


def test_every_point_is_wired():
    import inspect

    from keeper.app import execution
    from keeper.chain import tx

    src = inspect.getsource(tx)  # every fee bump (TxSender._send_attempt)
    assert all(f'crash_point("{p}")' in src for p in POINTS) and len(POINTS) == 4
    batch = inspect.getsource(execution)  # the one pipeline (daemon and rebalance); receipts settled by tx
    assert all(f'crash_point("{p}")' in batch for p in POINTS if p != "after_receipt")


@pytest.mark.parametrize("point", POINTS)
def test_kill_9_then_recovery_acts_exactly_once(env, w3, devnet, miner, point):
    set_price(w3, devnet, "ETH", 1_560)
    need = planned_positions(env)
    assert need, "the crash price must leave some position needing protection"
    start = head(w3)
    miner.start()
    crashed = env.daemon(fault=point)
    assert crashed.wait_exit(90) == -9, crashed.text()[-3000:]
    signed_and_sent = point in ("after_send", "after_receipt")
    if signed_and_sent:  # the transaction left before the kill: it lands (once) without us
        wait_for(lambda: keeper_actions(w3, devnet, start), 20, "the broadcast transaction to be mined")
        # The daemon broadcasts a tick's actions as one batch before waiting for receipts: killed
        # right after that broadcast or at the first receipt, the whole batch has left — each once.
        landed = per_position(keeper_actions(w3, devnet, start))
        assert set(landed.values()) == {1} and 1 <= len(landed) <= len(need)
    else:  # it never left the process
        b = head(w3)
        wait_for(lambda: head(w3) >= b + 3, 10, "a few blocks")
        assert keeper_actions(w3, devnet, start) == []

    rec = env.cli("reconcile")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    # The daemon journals a batch's decisions with their signed transactions in one commit: killed
    # before it, nothing was journaled and nothing sent (the restarted daemon decides afresh).
    expected = {"before_journal": "nothing open", "after_journal": "mined", "after_send": "mined",
                "after_receipt": "mined"}[point]
    assert f"journal: {expected}" in rec.stdout, rec.stdout

    daemon = env.daemon()
    wait_for(lambda: len(per_position(keeper_actions(w3, devnet, start))) >= len(need), 90,
             "every endangered position to be protected")
    b = head(w3)
    wait_for(lambda: daemon.ticked_after(b + 3), 30, "the daemon to tick a few more blocks")
    assert daemon.stop() == 0, daemon.text()[-3000:]

    actions = keeper_actions(w3, devnet, start)
    counts = per_position(actions)
    assert len(counts) == len(need) and set(counts.values()) == {1}, counts  # no double, none missed
    with Store.open(f"sqlite:///{env.root / 'k.db'}") as store:
        entries = Journal(store).entries("devnet")
    assert not [e for e in entries if e.status in ("intent", "signed")]  # nothing left open
    mined = {e.mined_hash.lower() for e in entries if e.status == "mined"}
    assert {a["tx"].lower() for a in actions} == mined  # every action on chain is journaled, and only those
    assert not [e for e in entries if e.status == "abandoned"]


def test_cli_killed_before_the_journal_write_acts_once_on_retry(env, w3, devnet):
    """The operator's command, killed after signing but before journaling: nothing left the process
    and nothing was journaled (the pipeline journals a decision with its signed transaction in one
    commit); after `keeper reconcile` the same command at the same block acts — once (not a refusal
    as a duplicate, and not a second transaction)."""
    set_price(w3, devnet, "ETH", 1_560)
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    keeper = devnet["roles"]["keeper"]
    nonce0, start = w3.eth.get_transaction_count(keeper), head(w3) + 1
    cmd = ("rebalance", f"{alice}:morpho", "--amount", "0.3", "WETH", "--vol", "WETH=0.8", "--execute")
    assert env.cli(*cmd, fault="before_journal").returncode == -9
    assert w3.eth.get_transaction_count(keeper, "pending") == nonce0 and head(w3) == start - 1
    rec = env.cli("reconcile")
    assert rec.returncode == 0 and "journal: nothing open" in rec.stdout, rec.stdout + rec.stderr
    again = env.cli(*cmd)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(keeper_actions(w3, devnet, start)) == 1 and w3.eth.get_transaction_count(keeper) == nonce0 + 1
    with Store.open(f"sqlite:///{env.root / 'k.db'}") as store:
        entries = Journal(store).entries("devnet")
    assert [e.status for e in entries] == ["mined"]  # one entry: the decision taken once
