"""A reorg (evm_snapshot/evm_revert: the blocks holding the keeper's mined actions vanish) while the
daemon runs, and again while it is down: the journal's mined actions are re-verified against the
chain, the dropped ones re-sent with their own signed bytes and nonce (an entry's latest attempt:
a same-nonce fee bump if one was signed), and the final chain holds exactly one action per
endangered position — never a second, re-planned one."""

import pytest

from keeper.store import Store
from keeper.store.journal import Journal
from tests.devnet.helpers import set_price
from tests.faults.conftest import head, keeper_actions, per_position, planned_at, wait_for


def _snapshot(w3) -> str:
    return w3.provider.make_request("evm_snapshot", [])["result"]


def _revert(w3, snap: str) -> None:
    assert w3.provider.make_request("evm_revert", [snap])["result"]


def _pool(w3, keeper: str) -> str:
    """What the node holds for the failure message: the keeper's mined and pending nonces and the
    pool's content (anvil's txpool_inspect), to tell a transaction the node dropped or never
    mines from one the daemon never re-sent."""
    try:
        inspect = w3.provider.make_request("txpool_inspect", []).get("result")
        return (f"keeper nonce latest {w3.eth.get_transaction_count(keeper)}, pending "
                f"{w3.eth.get_transaction_count(keeper, 'pending')}, head {w3.eth.block_number}; pool: {inspect}")
    except Exception as e:  # the diagnostics must not hide the failure they describe
        return f"(the pool could not be read: {e})"


def _journal(env):
    with Store.open(f"sqlite:///{env.root / 'k.db'}") as store:
        return Journal(store).entries("devnet")


def test_reorg_after_the_actions_mined_never_doubles(env, w3, devnet, miner):
    crash = lambda w: set_price(w, devnet, "ETH", 1_560)  # noqa: E731
    need = planned_at(env, w3, crash)
    crash(w3)
    start = head(w3)
    keeper = devnet["roles"]["keeper"]
    nonce0 = w3.eth.get_transaction_count(keeper)
    before = _snapshot(w3)
    miner.start(0.3)
    daemon = env.daemon()
    try:
        wait_for(lambda: len(per_position(keeper_actions(w3, devnet, start))) >= len(need), 60, "the actions")
        acted = keeper_actions(w3, devnet, start)
        first = {a["tx"] for a in acted}
        if len(first) != len(need):  # what was sent, and why, in full (an assert's repr would be cut short)
            pytest.fail(f"{len(first)} transactions for {len(need)} positions; planned: {sorted(need)}\nsent: "
                        + "\n".join(str({k: a.get(k) for k in ("action", "vault", "account", "market", "block", "tx")})
                                     for a in acted)
                        + "\ndecisions: " + "\n".join(str((e.get("block"), e.get("position"), e.get("action"),
                                                            e.get("why"))) for e in daemon.seen("decision")))
        # Reorg 1, the daemon running: every block with an action is gone. Automine off while the test
        # looks and takes its snapshot: the daemon, which sees the reorg and sends its journaled
        # transactions again at once, must not get them mined into the snapshot (a race the test lost
        # once on a loaded machine); they wait in the pool and land when blocks come again.
        miner.stop()
        w3.provider.make_request("evm_setAutomine", [False])
        _revert(w3, before)
        assert keeper_actions(w3, devnet, start) == [] and w3.eth.get_transaction_count(keeper) == nonce0
        after_reorg = _snapshot(w3)
        w3.provider.make_request("evm_setAutomine", [True])
        miner.start(0.3)
        try:
            wait_for(lambda: len(per_position(keeper_actions(w3, devnet, start))) >= len(need), 90,
                     "the dropped actions to land again")
        except AssertionError as e:
            own = "\n".join(line for line in daemon.text().splitlines() if '"logger":"keeper' in line)
            pytest.fail(f"{e}; {miner.report()}; {_pool(w3, keeper)}; the daemon's own log lines end:\n"
                        f"{own[-8000:]}")
        b = head(w3)
        wait_for(lambda: daemon.ticked_after(b + 5), 30, "a few more ticks")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.text()[-3000:]
    actions = keeper_actions(w3, devnet, start)
    counts = per_position(actions)
    if not (len(counts) == len(need) and set(counts.values()) == {1}):
        pytest.fail(f"actions per position after the reorg: {dict(counts)}\nactions: "
                    + "\n".join(str({k: a.get(k) for k in ("action", "vault", "account", "block", "tx")})
                                 for a in actions) + f"\nthe daemon's log ends:\n{daemon.text()[-8000:]}")
    entries = _journal(env)
    # The same decisions, not new ones: every landed transaction is an attempt the journal signed
    # for one of its entries (a reorg re-sends an entry's latest attempt: a same-nonce fee bump,
    # signed while the first attempt waited, lands instead of it), and each entry landed once.
    signed = {a.tx_hash for e in entries for a in e.attempts}
    landed = {a["tx"] for a in actions}
    mined = {e.mined_hash for e in entries if e.status == "mined"}
    if not (first <= signed and landed <= signed and mined == landed):
        pytest.fail(f"landed transactions the journal does not account for; first: {sorted(first)}\nnow: "
                    + "\n".join(str({k: a.get(k) for k in ("action", "vault", "account", "block", "tx")})
                                 for a in actions)
                    + "\njournal: " + "\n".join(str((e.id, e.status, e.nonce, e.mined_hash, e.mined_block,
                                                      [(t.tx_hash, t.max_fee, t.tip) for t in e.attempts]))
                                                 for e in entries)
                    + f"\nthe daemon's log ends:\n{daemon.text()[-8000:]}")
    assert w3.eth.get_transaction_count(keeper) == nonce0 + len(need)
    assert not [e for e in entries if e.status in ("intent", "signed")]

    # Reorg 2, the keeper down: `keeper reconcile` re-verifies and re-sends before anything else.
    miner.stop()
    _revert(w3, after_reorg)
    assert keeper_actions(w3, devnet, start) == []
    rec = env.cli("reconcile")
    assert rec.returncode == 0 and "journal: mined" in rec.stdout, rec.stdout + rec.stderr
    actions = keeper_actions(w3, devnet, start)
    assert {a["tx"] for a in actions} <= signed and set(per_position(actions).values()) == {1}
    assert len(actions) == len(need)
    again = env.cli("reconcile")
    assert again.returncode == 0 and "nothing open" in again.stdout, again.stdout
    assert w3.eth.get_transaction_count(keeper) == nonce0 + len(need)
