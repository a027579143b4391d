"""KeeperVault ``reducePerp`` on the real GMX v1 (both devnet modes), no mocks: a perp deleveraged by
reducing its size, its collateral left in place.

- Direct mode: one transaction, health must rise. Gated mode (GMX's production set-up): a
  PositionRouter decrease request of the vault's own position, executed by GMX's position keeper (or
  by the vault itself after GMX's public delay, or cancelled).
- A crash: the 10x long reduced before the fall survives a price at which the same position left alone
  is liquidated (the liquidation goes through from the state before the reduction, and reverts after).
- A hostile keeper cannot grow a position, take collateral or exceed the owner's caps: the request
  carries size only, to the vault; sizes past the position, other accounts, other requests and direct
  calls are refused with named errors.

Every test builds a fresh KeeperVault on the session's devnet and reverts the chain afterwards."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from tests.conftest import evm_revert, evm_snapshot
from tests.contracts.test_keeper_vault_gmx import direct, eth, gated, open_vault_positions, ref, world  # noqa: F401
from tests.contracts.vault_env import E6, E18, MAX, USD30, ZERO, Env

pytestmark = pytest.mark.chain

SIZE_LONG = 20_000 * USD30  # open_vault_positions: a 10x ETH long of $20,000, a 5x short of $10,000
CAP_CALL, CAP_WINDOW = 15_000 * USD30, 24_000 * USD30


def with_caps(e: Env) -> Env:
    e.send(e.vault.functions.setDeleverageCap(e.gmx.vault.address, CAP_CALL, CAP_WINDOW), e.owner)
    return e


def reduced(e: Env, rc) -> list:
    return [x["args"] for x in e.vault.events.PerpReduced().process_receipt(rc, errors=DISCARD)]


def decrease_requests(e: Env, rc) -> list:
    return [x["args"] for x in e.vault.events.PerpDecreaseRequested().process_receipt(rc, errors=DISCARD)]


def reduce(e: Env, market: str, size_delta: int):
    """``reducePerp`` from the keeper; on gated GMX the position keeper then executes the request."""
    rc = e.send(e.vault.functions.reducePerp(ref(e, market, e.vault.address), size_delta), e.keeper)
    if e.gmx.gated:
        assert e.gmx.keeper.step() == 1
    return rc


def eth_answer(e: Env) -> int:
    """The WETH feed's answer now (8 decimals), from GMX's own price (1e30)."""
    index = e.gmx.params("ETH-long")[1]
    return e.gmx.vault.functions.getMinPrice(index).call() // 10**22


def test_reduction_saves_a_long_from_a_crash(gmx_net):
    """A long a little above its liquidation price: the keeper takes 60% of its size off; a
    further fall that liquidates the same position left alone leaves the reduced one standing."""
    e = with_caps(world(gmx_net))
    g, v, mine = e.gmx, e.vault.functions, e.vault.address
    open_vault_positions(e)
    p0 = eth_answer(e)
    size0, coll0 = g.position(mine, "ETH-long")[:2]
    assert size0 == SIZE_LONG
    # GMX liquidates a long once what is left (collateral less the loss) falls under 1/50 of its size.
    # A fall that leaves 3.4 % of the size puts it at health 1.7; one that leaves 0.5 % liquidates it.
    margin = coll0 / size0
    g.set_price("WETH", int(p0 * (1 - (margin - 0.034))))
    g.sync_funding("ETH-long")
    r = ref(e, "ETH-long", mine)
    before = g.health(mine, "ETH-long")
    assert E18 < before < 2 * E18, before
    crash = int(p0 * (1 - (margin - 0.005)))

    snap = evm_snapshot(e.w3)  # control: left alone, the crash liquidates it
    g.set_price("WETH", crash)
    assert g.liquidatable(mine, "ETH-long")
    evm_revert(e.w3, snap)

    eth0 = eth(e)
    rc = reduce(e, "ETH-long", SIZE_LONG * 6 // 10)
    size1, coll1 = g.position(mine, "ETH-long")[:2]
    assert size1 == SIZE_LONG * 4 // 10
    # GMX books 60 % of the loss and its margin fee (0.1 % inside executions and in direct mode) out of
    # the collateral; nothing left the position to anyone.
    assert coll1 < coll0 - (coll0 - SIZE_LONG * 34 // 1000) * 6 // 10 * 99 // 100
    after = g.health(mine, "ETH-long")
    assert after > 2 * before, (before, after)
    assert v.deleverageUsed(g.vault.address).call() == SIZE_LONG * 6 // 10
    if g.gated:
        (req,) = decrease_requests(e, rc)
        assert req["sizeDelta"] == SIZE_LONG * 6 // 10 and req["healthBefore"] >= before
        assert eth(e) == eth0 - e.fee
    else:
        (ev,) = reduced(e, rc)
        assert (ev["sizeDelta"], ev["healthBefore"], ev["healthAfter"]) == (SIZE_LONG * 6 // 10, before, after)
        assert ev["received"] == 0  # at a loss nothing leaves the position
        assert eth(e) == eth0
    g.set_price("WETH", crash)
    assert not g.liquidatable(mine, "ETH-long")
    assert g.health(mine, "ETH-long") > E18
    assert v.health(r).call() == g.health(mine, "ETH-long")


def test_gated_reduction_is_a_size_only_request_to_the_vault(gated):
    e = with_caps(world(gated))
    g, v, mine, k = e.gmx, e.vault.functions, e.vault.address, e.keeper
    open_vault_positions(e)
    pr = g.position_router.functions
    for market, delta in (("ETH-long", 5_000 * USD30), ("ETH-short", 4_000 * USD30)):
        coll, index, is_long = g.params(market)
        size0, coll0 = g.position(mine, market)[:2]
        held = e.bal("WETH" if is_long else "USDC", mine)
        rc = e.send(v.reducePerp(ref(e, market, mine), delta), k)
        (req,) = decrease_requests(e, rc)
        assert (req["positionRouter"], req["market"], req["sizeDelta"], req["executionFee"]) == (
            g.position_router.address, g.key(market), delta, e.fee)
        stored = pr.decreasePositionRequests(req["requestKey"]).call()
        account, index_token, coll_delta, size_delta, long_, receiver, price, min_out, fee, *_, eth_out, cb = stored
        assert (account, index_token, coll_delta, size_delta, long_, receiver) == (mine, index, 0, delta, is_long, mine)
        assert (price, min_out, fee, eth_out, cb) == ((0 if is_long else MAX), 0, e.fee, False, ZERO)
        assert pr.getDecreasePositionRequestPath(req["requestKey"]).call() == [coll]
        assert tuple(g.position(mine, market)[:2]) == (size0, coll0)  # nothing yet
        assert g.keeper.step() == 1
        size1, coll1 = g.position(mine, market)[:2]
        assert size1 == size0 - delta and coll1 < coll0
        # a profit share would come to the vault; at entry there is none, and nothing else leaves
        assert e.bal("WETH" if is_long else "USDC", mine) == held
    assert g.router.functions.approvedPlugins(mine, g.position_router.address).call()
    rc = e.send(v.reducePerp(ref(e, "ETH-long", mine), 1_000 * USD30), k)
    print(f"\ngas: reducePerp as a GMX PositionRouter decrease request: {rc['gasUsed']}")


def test_stuck_decrease_executed_or_cancelled_by_the_vault(gated):
    e = with_caps(world(gated))
    g, v, mine, pv = e.gmx, e.vault.functions, e.vault.address, e.gmx.vault.address
    open_vault_positions(e)
    r = ref(e, "ETH-long", mine)
    eth0 = eth(e)
    (req,) = decrease_requests(e, e.send(v.reducePerp(r, 5_000 * USD30), e.keeper))
    key = req["requestKey"]
    for fn in (v.executePerpDecrease(pv, key), v.cancelPerpDecrease(pv, key)):
        assert e.err(fn, e.keeper).name == "delay"  # GMX: too early for the account itself
    e.warp(181)
    rc = e.send(v.executePerpDecrease(pv, key), e.keeper)
    (settled,) = [x["args"] for x in e.vault.events.PerpDecreaseSettled().process_receipt(rc, errors=DISCARD)]
    assert (settled["requestKey"], settled["executed"]) == (key, True)
    assert g.position(mine, "ETH-long")[0] == SIZE_LONG - 5_000 * USD30
    assert eth(e) == eth0  # the fee came back
    assert e.err(v.executePerpDecrease(pv, key), e.keeper).args == (key,)  # NotOwnRequest: gone

    (req,) = decrease_requests(e, e.send(v.reducePerp(r, 5_000 * USD30), e.keeper))
    e.warp(181)
    rc = e.send(v.cancelPerpDecrease(pv, req["requestKey"]), e.keeper)
    (settled,) = [x["args"] for x in e.vault.events.PerpDecreaseSettled().process_receipt(rc, errors=DISCARD)]
    assert settled["executed"] is False
    assert g.position(mine, "ETH-long")[0] == SIZE_LONG - 5_000 * USD30 and eth(e) == eth0
    g.keeper.step()  # finds nothing to do
    assert g.position(mine, "ETH-long")[0] == SIZE_LONG - 5_000 * USD30
    # the caps count what was asked, executed or not
    assert v.deleverageUsed(pv).call() == 10_000 * USD30


def test_hostile_keeper_cannot_grow_or_drain_a_perp(gmx_net):
    e = world(gmx_net)
    g, v, mine, pv, k = e.gmx, e.vault.functions, e.vault.address, e.gmx.vault.address, e.keeper
    open_vault_positions(e)
    long_ref = ref(e, "ETH-long", mine)
    # No caps set: nothing can be reduced.
    r = e.err(v.reducePerp(long_ref, USD30), k)
    assert (r.name, r.args) == ("CapPerCallExceeded", (pv, USD30, 0))
    with_caps(e)
    # Zero, or more than the position's size.
    assert e.err(v.reducePerp(long_ref, 0), k).name == "ZeroAmount"
    r = e.err(v.reducePerp(long_ref, SIZE_LONG + 1), k)
    assert (r.name, r.args) == ("SizeExceeded", (SIZE_LONG + 1, SIZE_LONG))
    # The caps per call and per window.
    r = e.err(v.reducePerp(long_ref, CAP_CALL + 1), k)
    assert (r.name, r.args) == ("CapPerCallExceeded", (pv, CAP_CALL + 1, CAP_CALL))
    reduce(e, "ETH-long", CAP_CALL)
    r = e.err(v.reducePerp(ref(e, "ETH-short", mine), 10_000 * USD30), k)
    assert (r.name, r.args) == ("CapPerWindowExceeded", (pv, CAP_CALL + 10_000 * USD30, CAP_WINDOW))
    # Only the keeper, only while not paused; only the vault's or the owner's positions, allow-listed.
    for who in (e.owner, e.stranger):
        assert e.err(v.reducePerp(long_ref, USD30), who).name == "NotKeeper"
    g.open("ETH-long", 2 * E18, 10_000, e.stranger)
    r = e.err(v.reducePerp(ref(e, "ETH-long", e.stranger), USD30), k)
    assert (r.name, r.args) == ("NotOwnPosition", (e.stranger,))
    r = e.err(v.reducePerp((2, pv, b"\x42" * 32, mine), USD30), k)
    assert r.name == "NotAllowed"
    e.send(v.pause(), e.owner)
    assert e.err(v.reducePerp(long_ref, USD30), k).name == "IsPaused"
    e.send(v.unpause(), e.owner)
    # The keeper's key cannot touch the vault's position on GMX directly, in either direction.
    coll, index, _ = g.params("ETH-long")
    for fn in (g.vault.functions.decreasePosition(mine, coll, index, 0, USD30, True, k),
               g.vault.functions.decreasePosition(mine, coll, index, 100 * USD30, 0, True, k),
               g.vault.functions.increasePosition(mine, coll, index, 1_000 * USD30, True)):
        assert e.err(fn, k).name in ("Vault: invalid msg.sender", "Vault: leverage not enabled")
    # The module refuses direct calls (its own storage is not a vault's).
    module = e.w3.eth.contract(address=v.module().call(), abi=e.vault.abi)
    assert e.err(module.functions.reducePerp(long_ref, USD30), k).name == "NotDelegated"
    if g.gated:
        # An owner-held gated position: GMX would make the request for the vault, not the owner.
        g.open("ETH-long", 2 * E18, 10_000, e.owner)
        r = e.err(v.reducePerp(ref(e, "ETH-long", e.owner), USD30), k)
        assert (r.name, r.args) == ("GatedOwnerPosition", (e.owner,))
        # Someone else's decrease request, an increase request's key, or an unknown key: not the vault's.
        pr = g.position_router.functions
        e.d.send(pr.createDecreasePosition([coll], index, 0, USD30, True, e.stranger, 0, 0, e.fee, False, ZERO),
                 e.stranger, value=e.fee)
        theirs = pr.getRequestKey(e.stranger, pr.decreasePositionsIndex(e.stranger).call()).call()
        (inc,) = e.requests(e.send(v.topUp(long_ref, E18 // 10), k))
        e.warp(181)
        for key in (theirs, inc["requestKey"], b"\x42" * 32):
            for fn in (v.executePerpDecrease(pv, key), v.cancelPerpDecrease(pv, key)):
                r = e.err(fn, k)
                assert (r.name, r.args) == ("NotOwnRequest", (key,))
        assert pr.decreasePositionRequests(theirs).call()[0] == e.stranger
    # Through it all the positions only shrank, and every token stayed in the vault or its positions.
    assert g.position(mine, "ETH-long")[0] == SIZE_LONG - CAP_CALL
    assert g.position(mine, "ETH-short")[0] == 10_000 * USD30
    assert e.bal("USDC", mine) == 20_000 * E6  # the reserve untouched (the positions were minted their own)


def test_owner_held_position_reduced_through_the_approved_router(direct):
    """Direct mode: the owner's own position, the vault an approved router of the owner's; what leaves
    the position comes to the vault, never anywhere else."""
    e = with_caps(world(direct))
    g, v, mine, o = e.gmx, e.vault.functions, e.vault.address, e.owner
    g.open("ETH-long", 3 * E18, 20_000, o)
    r = ref(e, "ETH-long", o)
    assert e.err(v.reducePerp(r, 5_000 * USD30), e.keeper).name == "Vault: invalid msg.sender"
    e.send(g.vault.functions.addRouter(mine), o)
    g.set_price("WETH", eth_answer(e) * 11 // 10)  # +10 %: a profit, whose reduced share is realised
    owner_weth, held = e.bal("WETH", o), e.bal("WETH", mine)
    rc = e.send(v.reducePerp(r, 5_000 * USD30), e.keeper)
    (ev,) = reduced(e, rc)
    assert ev["account"] == o and ev["received"] > 0 and ev["healthAfter"] > ev["healthBefore"]
    assert e.bal("WETH", mine) == held + ev["received"] and e.bal("WETH", o) == owner_weth
    assert g.position(o, "ETH-long")[0] == 15_000 * USD30
