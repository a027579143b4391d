"""The daemon's batch act path on the devnet (keeper.app.execution: the one pipeline): a tick's actions are journaled
in one commit and broadcast in one JSON-RPC batch on consecutive nonces, so they land in the same
block; one action refused by its gas call (a revert, decoded) is journaled as failed and stops none
of the others; the same decisions again at the same block are refused as duplicates (nothing sent)."""

from dataclasses import replace

import pytest

from keeper.app import execution
from keeper.app.books import plan_books
from keeper.app.items import Stage
from keeper.daemon.keeper import Keeper
from keeper.domain import ActionKind
from keeper.errors import Reverted
from keeper.store.journal import DuplicateIntent
from tests.daemon.helpers import VOLS, devnet_config
from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")


def _planned(k: Keeper, block: int):
    snap = k.reader.read(block)
    from keeper.app.books import asset_params, read_books

    assets = asset_params(k.reader, snap)
    books = read_books(k.reader, snap, k.ccfg, assets)
    session = k._session(snap, assets, books)
    actions = [(book, a) for book, plan in plan_books(books, k.risk, assets, k.policy, block, {})
               for a in plan.actions if a.kind is not ActionKind.WITHDRAW_EXCESS]
    return session, actions


@pytest.mark.parametrize("mode", ["simulated", "access_lists", "chunked"])
def test_a_batch_lands_in_one_block_and_a_refused_action_stops_no_other(mode, tmp_path, anvil, w3, devnet,
                                                                        monkeypatch):
    """``simulated``: one eth_simulateV1 for the run; ``access_lists``: a node without it (one
    eth_createAccessList per call); ``chunked``: a chunk per vault, each sent as soon as its
    simulation is back (``step``), the last ones by the final flush."""
    set_price(w3, devnet, "ETH", 1_560)
    k = Keeper(devnet_config(tmp_path, anvil.url, devnet, monkeypatch), vols=VOLS)
    k.startup()
    try:
        keeper_addr = devnet["roles"]["keeper"]
        nonce0 = w3.eth.get_transaction_count(keeper_addr)
        block = w3.eth.block_number
        session, actions = _planned(k, block)
        assert len(actions) >= 2, "the crash must leave several positions needing protection"
        d = k.executor
        if mode == "access_lists":
            d.client.unsupported.add("eth_simulateV1")
        if mode == "chunked":
            monkeypatch.setattr(execution, "GAS_CHUNK", 1)
        d.begin(block)
        book, good = actions[0]
        bad = replace(good, amount_raw=10**40)  # more than the vault holds: the gas call reverts
        w3.provider.make_request("evm_setAutomine", [False])  # one block for whatever the batch sent
        items = []
        for b, a in actions:
            items.append(d.add(session, b, a))
            d.step()  # chunked: simulates this one ...
            if mode == "chunked":
                items[-1].gas_reply[0].result()
                d.step()  # ... and sends it (and anything queued before it)
        items.append(d.add(session, book, bad))
        d.flush()
        w3.provider.make_request("evm_mine", [])
        refused = items[-1]
        assert isinstance(refused.error, Reverted) and refused.out is None and "would revert" in str(refused.error)
        sent = items[:-1]
        assert all(it.error is None and it.out is not None for it in sent)
        assert [it.out.nonce for it in sent] == list(range(nonce0, nonce0 + len(sent)))  # consecutive, no gap
        broadcasts = len({it.sent_at for it in sent})
        assert broadcasts == (len(sent) if mode == "chunked" else 1)
        assert ("eth_simulateV1" in d.client.unsupported) is (mode == "access_lists")
        assert set(d.timings) == {"gas_wait_s", "sign_s", "journal_s", "journal_lock_s", "journal_commit_s",
                                  "broadcast_s"}
        assert d.timings["sign_s"] > 0 and d.timings["journal_s"] > 0 and d.timings["broadcast_s"] > 0
        # the journal's split is a part of its whole
        assert 0 < d.timings["journal_lock_s"] + d.timings["journal_commit_s"] <= d.timings["journal_s"]
        d.settle_all(items)
        blocks = {it.out.receipt.block for it in sent}
        assert len(blocks) == 1 and all(it.out.receipt.ok and it.stage is Stage.MINED for it in sent)
        assert refused.stage is Stage.REFUSED
        assert w3.eth.get_transaction_count(keeper_addr) == nonce0 + len(sent)
        journal = {e.id: e for e in d.journal.entries("devnet")}
        assert journal[refused.entry].status == "failed" and journal[refused.entry].attempts == ()
        assert all(journal[it.entry].status == "mined" and journal[it.entry].mined_hash == it.out.mined_hash
                   for it in sent)

        # The same decisions at the same block (a restart within the block): refused, nothing sent.
        d.begin(block)
        again = [d.add(session, b, a) for b, a in actions]
        d.flush()
        d.finish()
        assert all(isinstance(it.error, DuplicateIntent) and it.out is None and it.stage is Stage.REFUSED
                   for it in again)
        assert w3.eth.get_transaction_count(keeper_addr, "pending") == nonce0 + len(sent)
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
        k.shutdown()


def test_vault_books_read_ahead_are_used_only_for_the_same_block_and_layout(tmp_path, anvil, w3, devnet, monkeypatch):
    from keeper.app.books import asset_params, book_layout, read_book_calls, read_books

    k = Keeper(devnet_config(tmp_path, anvil.url, devnet, monkeypatch), vols=VOLS)
    k.startup()
    try:
        block = w3.eth.block_number
        snap = k.reader.read(block)
        assets = asset_params(k.reader, snap)
        fresh = read_books(k.reader, snap, k.ccfg, assets)
        layout = book_layout(snap, k.ccfg, assets)
        ahead = read_book_calls(k.reader, layout, block)

        def view(books):
            return [(b.vault, [p.key for p in b.positions], b.reserve.get(a.address) if b.reserve else None, b.floors)
                    for b in books for a in assets]

        assert view(read_books(k.reader, snap, k.ccfg, assets, prefetched=(layout, block, ahead))) == view(fresh)
        assert any(b.floors for b in fresh) and any(b.reserve.get(a.address) for b in fresh for a in assets)
        # Not for this block, or another layout: read again (the garbage results are never decoded).
        assert view(read_books(k.reader, snap, k.ccfg, assets, prefetched=(layout, block - 1, []))) == view(fresh)
        other = book_layout(snap, k.ccfg, assets[:1])
        assert other != layout
        assert view(read_books(k.reader, snap, k.ccfg, assets, prefetched=(other, block, []))) == view(fresh)
    finally:
        k.shutdown()
