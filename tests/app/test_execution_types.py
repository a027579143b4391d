"""The execution pipeline's types, without a chain: an intent's idempotency key and journal record,
the receipt parsed at the boundary, the journal's status enum, the dry run's null executor, and the
typed send errors."""

import json

import pytest

from keeper.app.execution import GAS_CHUNK, MAX_CHUNK, chunk_target
from keeper.app.executor import DryRun
from keeper.app.items import Intent, Stage
from keeper.chain.tx import Receipt
from keeper.domain import Action, ActionKind, Asset, Reason
from keeper.errors import GasCapHit, MinedReverted, NonceUsed, TxFailed
from keeper.store.journal import FINAL_STATUSES, OPEN_STATUSES, Status

WETH = Asset("WETH", "0x" + "11" * 20, 18)
REASON = Reason(0.2, 0.01, 1.05, 1.3, 0.02, 24.0, "tail", "to P <= 1%")


def _action(kind=ActionKind.TOP_UP, raw=1_500_000_000_000_000_000, target=None):
    return Action(kind, "devnet:aave_v3:0xpool:0xacc:pool", WETH, raw / 1e18, raw, REASON, target_key=target)


def test_an_intent_is_keyed_by_origin_position_block_kind_and_amount():
    a = _action()
    i = Intent.of("daemon", 123, "0xvault", a)
    assert i.key == f"daemon:{a.position_key}:123:top_up:{a.amount_raw}"
    assert Intent.of("manual", 123, "0xvault", a).key != i.key  # an operator's action is its own decision
    assert Intent.of("daemon", 124, "0xvault", a).key != i.key
    assert Intent.of("daemon", 123, "0xvault", _action(raw=a.amount_raw + 1)).key != i.key
    rec = json.loads(json.dumps(i.record(), default=str))  # what the journal stores
    assert rec["kind"] == "top_up" and rec["amount_raw"] == a.amount_raw and rec["asset"] == WETH.address
    assert rec["vault"] == "0xvault" and rec["reason"]["p_before"] == 0.2 and rec["target"] is None
    moved = Intent.of("daemon", 1, "0xv", _action(ActionKind.REBALANCE, target="devnet:morpho:x"))
    assert moved.record()["target"] == "devnet:morpho:x"


def test_a_receipt_is_parsed_once_at_the_boundary():
    rc = Receipt.from_rpc({"transactionHash": "0xab", "blockNumber": "0x10", "status": "0x1", "gasUsed": "0x5208",
                           "logs": [{"address": "0xv", "topics": []}]})
    assert (rc.tx_hash, rc.block, rc.ok, rc.gas_used, len(rc.logs)) == ("0xab", 16, True, 21_000, 1)
    failed = Receipt.from_rpc({"transactionHash": "0xcd", "blockNumber": "0x11", "status": "0x0"})
    assert not failed.ok and failed.gas_used == 0 and failed.logs == ()


def test_journal_statuses_are_one_enum_stored_as_their_values():
    assert set(OPEN_STATUSES) | set(FINAL_STATUSES) == set(Status) and not set(OPEN_STATUSES) & set(FINAL_STATUSES)
    assert Status("mined") is Status.MINED and Status.SIGNED == "signed"  # rows written before stay readable
    with pytest.raises(ValueError):
        Status("sent")


def test_send_errors_are_typed():
    for err in (GasCapHit("x"), NonceUsed("x"), MinedReverted("x", tx_hash="0x1", block=3)):
        assert isinstance(err, TxFailed) and err.exit_code == 4
    e = MinedReverted("reverted", tx_hash="0xab", block=9)
    assert (e.tx_hash, e.block) == ("0xab", 9)


def test_the_dry_run_executor_takes_nothing():
    d = DryRun()
    d.begin(1)
    assert d.add(None, None, _action()) is None  # type: ignore[arg-type]
    d.step()
    assert d.flush() == []
    d.settle_all([])
    d.finish()
    d.close()
    assert [s.value for s in Stage] == ["queued", "refused", "sent", "mined", "reverted", "unsettled"]


def test_simulation_chunks_are_small_first_and_last_and_large_between():
    assert chunk_target(0, 1000) == GAS_CHUNK  # the most endangered vaults' actions go out first
    assert chunk_target(3, None) == GAS_CHUNK  # (the operator's run: nothing known ahead)
    sizes, remaining, started = [], 100, 0  # K = 100 vaults with one action each
    queued = 0
    while remaining:
        remaining -= 1
        queued += 1
        if queued >= chunk_target(started, remaining):
            sizes.append(queued)
            queued, started = 0, started + 1
    sizes.append(queued)  # the final flush
    assert sum(sizes) == 100 and sizes[0] == GAS_CHUNK and max(sizes) <= MAX_CHUNK
    assert len(sizes) < 100 / GAS_CHUNK  # fewer, larger chunks than a fixed size would take
    assert sizes[-1] <= GAS_CHUNK and sizes[-2] <= GAS_CHUNK  # and the last ones small again
