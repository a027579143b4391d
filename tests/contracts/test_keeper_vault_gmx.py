"""KeeperVault on the real GMX v1, in both of the devnet's modes (``gmx_net``: gated, as GMX runs in
production, and direct), no mocks:

- ``HealthLib.perp`` is exact: bisecting the Chainlink price to the last feed unit at which GMX lets
  a liquidation through (gated: the PositionManager from its liquidator; direct: the Vault from
  anyone), the vault's health is below 1e18 on every probe where the liquidation succeeds and not
  below it anywhere else, for a 10x long (max-leverage rule) and for a short that is in profit at
  its boundary with 20 days of funding on it (the fee rule, profit added);
- gated top-ups are PositionRouter requests (executed by the position keeper, or by the vault itself
  after GMX's public delay, or cancelled), paid from the vault's ether within the owner's caps;
  direct top-ups are atomic; a hostile keeper is refused with named errors;
- withdrawals are direct ``decreasePosition`` calls in both modes, held to the floor.

Every test builds a fresh KeeperVault on the session's devnet and reverts the chain afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web3.logs import DISCARD

from keeper.devnet.deployer import Deployer
from keeper.errors import Reverted
from tests.conftest import GmxNet, evm_revert, evm_snapshot
from tests.contracts.gmx_env import Gmx
from tests.contracts.vault_env import E6, E18, KV, MAX, PERP, TOP_UP, USD30, WITHDRAW_EXCESS, ZERO, Env

pytestmark = pytest.mark.chain  # the direct-mode devnet is reached through getfixturevalue

FLOOR = 3 * E18  # perp health counts in units of GMX's 50x maximum leverage: at most ~16x here
DEPOSIT_FEE_BPS = 30
DAY, HOUR = 86_400, 3_600


# ---------------------------------------------------------------------------------- set-up
def _single(request, mode: str, node: str, w3: str, dep: str) -> Iterator[GmxNet]:
    node, w3, dep = (request.getfixturevalue(n) for n in (node, w3, dep))
    snap = evm_snapshot(w3)
    yield GmxNet(mode, w3, node.url, dep)
    evm_revert(w3, snap)


@pytest.fixture
def gated(request, anvil_v37, w3_v37, devnet_v37) -> Iterator[GmxNet]:
    """The default devnet (GMX gated) alone, reverted afterwards."""
    yield from _single(request, "gated", "anvil_v37", "w3_v37", "devnet_v37")


@pytest.fixture
def direct(request) -> Iterator[GmxNet]:
    """The devnet with GMX in direct mode alone, reverted afterwards."""
    yield from _single(request, "direct", "anvil_direct", "w3_direct", "devnet_direct")


def world(net: GmxNet) -> Env:
    """A fresh KeeperVault on ``net``: caps, the ETH markets (long: WETH, short: USDC) allow-listed
    with floor 3, a PositionRouter route (fee cap 2x GMX's minimum), a reserve of 20 WETH and
    20,000 USDC, and 100 minimum execution fees of ether."""
    w3, dep = net.w3, net.dep
    accts = list(w3.eth.accounts)
    d = Deployer(w3, accts[0])
    g = Gmx(w3, dep, d)
    assert g.mode == net.mode
    e = Env(w3=w3, d=d, net=dep, gmx=g, owner=accts[9], keeper=accts[11], stranger=accts[8], whale=accts[2])
    e.tok = {s: g.token(dep["tokens"][s]["address"]) for s in ("WETH", "WBTC", "USDC")}
    v = e.vault = d.deploy(KV, e.owner, e.keeper)
    o = e.owner
    e.fee = g.fee
    e.send(v.functions.setCap(e.tok["WETH"].address, 10 * E18, 20 * E18), o)
    e.send(v.functions.setCap(e.tok["USDC"].address, 20_000 * E6, 40_000 * E6), o)
    e.send(v.functions.setCap(ZERO, 2 * e.fee, 20 * e.fee), o)
    e.send(v.functions.setReleaseCap(e.tok["WETH"].address, 20 * E18), o)
    e.send(v.functions.setReleaseCap(e.tok["USDC"].address, 40_000 * E6), o)
    for m in ("ETH-long", "ETH-short"):
        e.send(v.functions.setPerpMarket(g.vault.address, *g.params(m), True, FLOOR), o)
    e.send(v.functions.setPerpRoute(g.vault.address, g.position_router.address, 2 * e.fee), o)
    e.send(e.tok["WETH"].functions.mint(v.address, 20 * E18), g.admin)
    e.send(e.tok["USDC"].functions.mint(v.address, 20_000 * E6), g.admin)
    d.send_value(v.address, 100 * e.fee, sender=o)
    return e


def ref(e: Env, market: str, account: str) -> tuple:
    return (PERP, e.gmx.vault.address, e.gmx.key(market), account)


def open_vault_positions(e: Env) -> None:
    """Vault-held positions opened by the owner through ``execute``: a 10x ETH long (2 WETH,
    $20,000) and a 5x ETH short (2,000 USDC, $10,000)."""
    mine = e.vault.address
    e.gmx.open("ETH-long", 2 * E18, 20_000, mine, kv=e.vault, owner=e.owner)
    e.gmx.open("ETH-short", 2_000 * E6, 10_000, mine, kv=e.vault, owner=e.owner)


def eth(e: Env) -> int:
    return e.w3.eth.get_balance(e.vault.address)


# ---------------------------------------------------------------------------------- (a) exactness
def _bisect(e: Env, account: str, market: str, liquidatable_at: int, safe_at: int, *,
            manager: bool | None = None) -> tuple[int, int]:
    """Bisect the WETH feed answer between a liquidatable and a safe one down to adjacent answers.
    On every probe the vault's health is checked against GMX itself: below 1e18 exactly when the
    liquidation goes through; at both ends and at the boundary also against the Python twin."""
    r = ref(e, market, account)

    def probe(answer: int, twin: bool = False) -> bool:
        e.gmx.set_price("WETH", answer)
        health = e.vault.functions.health(r).call()
        liquidatable = e.gmx.liquidatable(account, market, manager=manager)
        assert (health < E18) == liquidatable, (answer, health)
        if twin:
            assert health == e.gmx.health(account, market), answer
        return liquidatable

    assert probe(liquidatable_at, True) and not probe(safe_at, True)
    bad, good = liquidatable_at, safe_at
    while abs(bad - good) > 1:
        mid = (bad + good) // 2
        if probe(mid):
            bad = mid
        else:
            good = mid
    assert probe(bad, True) and not probe(good, True)
    return bad, good


def test_health_is_exact_at_the_liquidation_boundary(gmx_net):
    e = world(gmx_net)
    g, trader = e.gmx, e.stranger
    g.open("ETH-long", 2 * E18, 20_000, trader)  # 10x
    # A small short ($1,000 at ~30x) and a whale short holding three quarters of the USDC pool in
    # reserve: GMX's funding on USDC (factor 100 x utilisation per hour) then builds up fast.
    g.open("ETH-short", 30 * E6, 1_000, trader)
    g.open("ETH-short", 200_000 * E6, 1_500_000, e.whale)
    e.warp(20 * DAY)
    g.fresh_interval("ETH-long", "ETH-short")  # an hour of chain time with no new funding
    assert g.funding_fee(trader, "ETH-long") > 0 and g.funding_fee(trader, "ETH-short") > 10 * USD30

    # The long: liquidated for exceeding 50x (state 2) a little under $1,650.
    bad, good = _bisect(e, trader, "ETH-long", 1_000 * 10**8, 2_000 * 10**8)
    assert good == bad + 1 and 1_600 * 10**8 < bad < 1_700 * 10**8
    # The short: at entry its funding and fees exceed what is left (state 1); it becomes safe only
    # once its profit covers them, so the boundary is below the entry price: profit IS counted.
    bad, good = _bisect(e, trader, "ETH-short", 2_000 * 10**8, 1_900 * 10**8)
    assert bad == good + 1 and good < 1_990 * 10**8
    size, _, avg, _, _, _, _, last = g.position(trader, "ETH-short")
    g.set_price("WETH", good)
    has_profit, delta = g.vault.functions.getDelta(g.params("ETH-short")[1], size, avg, False, last).call()
    assert has_profit and delta > 0
    # The liquidation itself goes through one feed unit higher, and the position is gone.
    g.set_price("WETH", bad)
    coll, index, is_long = g.params("ETH-short")
    if g.gated:
        e.send(g.position_manager.functions.liquidatePosition(trader, coll, index, is_long, g.liquidator),
               g.liquidator)
    else:
        e.send(g.vault.functions.liquidatePosition(trader, coll, index, is_long, e.keeper), e.keeper)
    assert g.position(trader, "ETH-short")[0] == 0
    assert e.vault.functions.health(ref(e, "ETH-short", trader)).call() == MAX


def test_health_with_a_governor_without_the_fee_getter(gated):
    """Private liquidation mode under a governor that is not a GMX Timelock (here an EOA, which also
    liquidates through its own registered liquidator): HealthLib's staticcall finds no fee getter
    and charges the Vault's own rate (5% at rest), which is what such a liquidation pays."""
    e = world(gated)
    g, trader, admin = e.gmx, e.stranger, e.gmx.admin
    g.open("ETH-long", 2 * E18, 20_000, trader)
    e.send(g.timelock.functions.signalSetGov(g.vault.address, admin), admin)
    e.warp(1)
    e.send(g.timelock.functions.setGov(g.vault.address), admin)
    assert g.vault.functions.gov().call() == admin and g.vault.functions.inPrivateLiquidationMode().call()
    e.send(g.vault.functions.setLiquidator(g.liquidator, True), admin)
    assert g.liquidation_bps() == g.vault.functions.marginFeeBasisPoints().call() == 500
    g.fresh_interval("ETH-long")
    # 5% of $20,000 in fees: liquidated (fees + $5 exceed what is left) well above the 50x limit
    bad, good = _bisect(e, trader, "ETH-long", 1_000 * 10**8, 2_000 * 10**8, manager=False)
    assert good == bad + 1 and bad > 1_700 * 10**8


# ---------------------------------------------------------------------------------- (b)-(e) top-ups
def test_gated_top_up_is_a_request_the_position_keeper_executes(gated):
    e = world(gated)
    g, v, mine = e.gmx, e.vault.functions, e.vault.address
    open_vault_positions(e)
    weth, usdc = e.tok["WETH"], e.tok["USDC"]
    g.fresh_interval("ETH-long", "ETH-short")
    # GMX's deposit fee: on a long's margin only
    cases = (("ETH-long", weth, E18, DEPOSIT_FEE_BPS), ("ETH-short", usdc, 1_000 * E6, 0))
    for market, token, amount, fee_bps in cases:
        r, asset = ref(e, market, mine), token.address
        eth0, coll0, funding = eth(e), g.position(mine, market)[1], g.funding_fee(mine, market)
        health0, held = v.health(r).call(), token.functions.balanceOf(mine).call()
        rc = e.send(v.topUp(r, amount), e.keeper)
        assert e.events(rc) == []
        (req,) = e.requests(rc)
        assert (req["positionRouter"], req["market"], req["account"], req["asset"], req["amount"]) == (
            g.position_router.address, g.key(market), mine, asset, amount)
        assert req["executionFee"] == e.fee and req["healthBefore"] == health0
        assert eth(e) == eth0 - e.fee
        assert g.position(mine, market)[1] == coll0  # nothing in the position yet
        assert token.functions.balanceOf(mine).call() == held - amount
        assert token.functions.allowance(mine, g.router.address).call() == 0
        assert g.keeper.step() == 1
        added = g.vault.functions.tokenToUsdMin(asset, amount - amount * fee_bps // 10_000).call()
        assert g.position(mine, market)[1] == coll0 + added - funding
        assert v.health(r).call() > health0
    assert v.windowUsed(ZERO).call() == 2 * e.fee
    assert v.windowUsed(weth.address).call() == E18 and v.windowUsed(usdc.address).call() == 1_000 * E6
    assert g.router.functions.approvedPlugins(mine, g.position_router.address).call()
    # gas of a request top-up, the plugin already approved (for the report; a loose bound)
    rc = e.send(v.topUp(ref(e, "ETH-long", mine), E18), e.keeper)
    assert rc["gasUsed"] < 700_000, rc["gasUsed"]
    print(f"\ngas: topUp as a GMX PositionRouter request: {rc['gasUsed']}")


def test_direct_top_up_is_atomic(direct):
    e = world(direct)
    g, v, mine = e.gmx, e.vault.functions, e.vault.address
    open_vault_positions(e)
    weth = e.tok["WETH"].address
    r = ref(e, "ETH-long", mine)
    g.sync_funding("ETH-long")
    before, coll0, eth0 = g.health(mine, "ETH-long"), g.position(mine, "ETH-long")[1], eth(e)
    funding = g.funding_fee(mine, "ETH-long")  # collected by the increase
    rc = e.frozen(v.topUp(r, E18), e.keeper)
    (ev,) = e.events(rc)
    assert e.requests(rc) == []
    assert (ev["action"], ev["account"], ev["asset"], ev["amount"]) == (TOP_UP, mine, weth, E18)
    assert ev["healthBefore"] == before and ev["healthAfter"] == g.health(mine, "ETH-long", rc["blockNumber"])
    assert ev["healthAfter"] > before
    # no deposit fee on a direct increase (that is the PositionRouter's); no ether spent
    assert g.position(mine, "ETH-long")[1] == coll0 + g.vault.functions.tokenToUsdMin(weth, E18).call() - funding
    assert eth(e) == eth0 and v.windowUsed(ZERO).call() == 0
    # A top-up smaller than the funding fee that increasePosition collects first would lower the
    # position's health: refused. A real one after the same wait goes through.
    e.warp(10 * HOUR)
    r_err = e.err(v.topUp(r, 1), e.keeper)
    assert r_err.name == "HealthNotRaised" and r_err.args[1] < r_err.args[0], r_err
    e.send(v.topUp(r, E18 // 10), e.keeper)


def test_stuck_request_executed_or_cancelled_by_the_vault(gated):
    """The position keeper does not run: the vault's keeper settles its own requests itself once
    GMX's public delay (180 s) has passed; the fee (and, on a cancel, the collateral) come back."""
    e = world(gated)
    g, v, mine, pv = e.gmx, e.vault.functions, e.vault.address, e.gmx.vault.address
    open_vault_positions(e)
    r = ref(e, "ETH-long", mine)
    g.fresh_interval("ETH-long")
    coll0, funding, eth0 = g.position(mine, "ETH-long")[1], g.funding_fee(mine, "ETH-long"), eth(e)
    (req,) = e.requests(e.send(v.topUp(r, E18), e.keeper))
    key = req["requestKey"]
    for fn in (v.executePerpRequest(pv, key), v.cancelPerpRequest(pv, key)):
        assert e.err(fn, e.keeper).name == "delay"  # GMX: too early for the account itself
    e.warp(181)
    rc = e.send(v.executePerpRequest(pv, key), e.keeper)
    (settled,) = e.settled(rc)
    assert (settled["requestKey"], settled["executed"]) == (key, True)
    added = g.vault.functions.tokenToUsdMin(e.tok["WETH"].address, E18 - E18 * DEPOSIT_FEE_BPS // 10_000).call()
    assert g.position(mine, "ETH-long")[1] == coll0 + added - funding
    assert eth(e) == eth0  # the execution fee came back
    r_err = e.err(v.executePerpRequest(pv, key), e.keeper)  # gone now
    assert (r_err.name, r_err.args) == ("NotOwnRequest", (key,))

    weth_held, coll1 = e.bal("WETH", mine), g.position(mine, "ETH-long")[1]
    (req,) = e.requests(e.send(v.topUp(r, 2 * E18), e.keeper))
    assert e.bal("WETH", mine) == weth_held - 2 * E18 and eth(e) == eth0 - e.fee
    e.warp(181)
    rc = e.send(v.cancelPerpRequest(pv, req["requestKey"]), e.keeper)
    (settled,) = e.settled(rc)
    assert settled["executed"] is False
    assert e.bal("WETH", mine) == weth_held and eth(e) == eth0
    assert g.position(mine, "ETH-long")[1] == coll1
    # The position keeper, run later, finds both requests settled and skips them.
    g.keeper.step()
    assert g.position(mine, "ETH-long")[1] == coll1
    # caps count what was sent, not what came back
    assert v.windowUsed(ZERO).call() == 2 * e.fee and v.windowUsed(e.tok["WETH"].address).call() == 3 * E18


def test_hostile_keeper_on_gated_gmx(gated):
    e = world(gated)
    g, v, mine, pv, k = e.gmx, e.vault.functions, e.vault.address, e.gmx.vault.address, e.keeper
    open_vault_positions(e)
    pr = g.position_router.functions
    # The only request the vault makes: margin only, no swap, for itself, at the minimum fee.
    for market, amount in (("ETH-long", E18), ("ETH-short", 100 * E6)):
        rc = e.send(v.topUp(ref(e, market, mine), amount), k)
        (req,) = e.requests(rc)
        coll, index, is_long = g.params(market)
        (created,) = g.position_router.events.CreateIncreasePosition().process_receipt(rc, errors=DISCARD)
        assert (created["args"]["account"], created["args"]["path"], created["args"]["sizeDelta"]) == (mine, [coll], 0)
        stored = pr.increasePositionRequests(req["requestKey"]).call()
        account, index_token, amount_in, min_out, size_delta, long_, price, fee, *_, in_eth, callback = stored
        assert (account, index_token, amount_in, min_out, size_delta, long_) == (mine, index, amount, 0, 0, is_long)
        assert price == (MAX if is_long else 0) and fee == e.fee and in_eth is False and callback == ZERO
        assert pr.getIncreasePositionRequestPath(req["requestKey"]).call() == [coll]
    long_ref = ref(e, "ETH-long", mine)
    # Execution fee above the owner's cap: the owner lowers the cap, or GMX's admin raises its minimum.
    e.send(v.setPerpRoute(pv, g.position_router.address, e.fee - 1), e.owner)
    r = e.err(v.topUp(long_ref, E18), k)
    assert (r.name, r.args) == ("ExecutionFeeTooHigh", (e.fee, e.fee - 1))
    e.send(v.setPerpRoute(pv, g.position_router.address, 2 * e.fee), e.owner)
    e.send(pr.setMinExecutionFee(3 * e.fee), g.admin)
    r = e.err(v.topUp(long_ref, E18), k)
    assert (r.name, r.args) == ("ExecutionFeeTooHigh", (3 * e.fee, 2 * e.fee))
    e.send(pr.setMinExecutionFee(e.fee), g.admin)
    # The ether caps: per call and per window.
    e.send(v.setCap(ZERO, e.fee - 1, MAX), e.owner)
    r = e.err(v.topUp(long_ref, E18), k)
    assert (r.name, r.args) == ("CapPerCallExceeded", (ZERO, e.fee, e.fee - 1))
    e.send(v.setCap(ZERO, e.fee, 3 * e.fee), e.owner)  # two fees already spent above
    e.send(v.topUp(long_ref, E18), k)
    r = e.err(v.topUp(long_ref, E18), k)
    assert (r.name, r.args) == ("CapPerWindowExceeded", (ZERO, 4 * e.fee, 3 * e.fee))
    e.send(v.setCap(ZERO, e.fee, MAX), e.owner)
    # No ether left in the vault.
    e.send(v.withdraw(ZERO, MAX), e.owner)
    r = e.err(v.topUp(long_ref, E18), k)
    assert (r.name, r.args) == ("InsufficientEth", (e.fee, 0))
    e.d.send_value(mine, 10 * e.fee, sender=e.owner)
    # An owner-held gated position: GMX would make the request for the vault, not the owner.
    g.open("ETH-long", 2 * E18, 10_000, e.owner)
    e.send(g.vault.functions.addRouter(mine), e.owner)
    r = e.err(v.topUp(ref(e, "ETH-long", e.owner), E18), k)
    assert (r.name, r.args) == ("GatedOwnerPosition", (e.owner,))
    # Someone else's request, or a key that was never stored, cannot be executed or cancelled.
    coll, index, _ = g.params("ETH-long")
    e.send(e.tok["WETH"].functions.mint(e.stranger, E18), g.admin)
    e.send(e.tok["WETH"].functions.approve(g.router.address, E18), e.stranger)
    e.send(g.router.functions.approvePlugin(g.position_router.address), e.stranger)
    e.d.send(pr.createIncreasePosition([coll], index, E18, 0, 0, True, MAX, e.fee, bytes(32), ZERO), e.stranger,
             value=e.fee)
    index_no = pr.increasePositionsIndex(e.stranger).call()
    theirs = pr.getRequestKey(e.stranger, index_no).call()
    e.warp(181)
    for key in (theirs, b"\x42" * 32):
        for fn in (v.executePerpRequest(pv, key), v.cancelPerpRequest(pv, key)):
            r = e.err(fn, k)
            assert (r.name, r.args) == ("NotOwnRequest", (key,))
    assert pr.increasePositionRequests(theirs).call()[0] == e.stranger
    # No route: no request, no settlement.
    e.send(v.setPerpRoute(pv, ZERO, 0), e.owner)
    assert v.perpRoutes(pv).call() == [ZERO, 0]
    for fn in (v.topUp(long_ref, E18), v.executePerpRequest(pv, theirs), v.cancelPerpRequest(pv, theirs)):
        r = e.err(fn, k)
        assert (r.name, r.args) == ("NoPerpRoute", (pv,))
    # Only the owner sets routes, and only to a PositionRouter of that Vault.
    for who in (k, e.stranger):
        assert e.err(v.setPerpRoute(pv, g.position_router.address, MAX), who).name == "NotOwner"
    r = e.err(v.setPerpRoute(e.tok["WETH"].address, g.position_router.address, MAX), e.owner)
    assert (r.name, r.args) == ("InvalidRoute", (e.tok["WETH"].address, g.position_router.address))


# ---------------------------------------------------------------------------------- (f)-(g) others
def test_owner_held_position_through_the_approved_router(direct):
    """Direct mode: the owner's own position, the vault an approved router of the owner on GMX's
    Vault. Tokens go in from the vault's reserve and come back only to the vault."""
    e = world(direct)
    g, v, mine, o = e.gmx, e.vault.functions, e.vault.address, e.owner
    g.open("ETH-long", 3 * E18, 20_000, o)
    r = ref(e, "ETH-long", o)
    owner_weth = e.bal("WETH", o)
    # without the approval GMX refuses the vault
    assert e.err(v.topUp(r, E18), e.keeper).name == "Vault: invalid msg.sender"
    e.send(g.vault.functions.addRouter(mine), o)
    g.sync_funding("ETH-long")
    coll0, held, funding = g.position(o, "ETH-long")[1], e.bal("WETH", mine), g.funding_fee(o, "ETH-long")
    rc = e.frozen(v.topUp(r, E18), e.keeper)
    (ev,) = e.events(rc)
    assert (ev["action"], ev["account"], ev["amount"]) == (TOP_UP, o, E18)
    added = g.vault.functions.tokenToUsdMin(e.tok["WETH"].address, E18).call()
    assert g.position(o, "ETH-long")[1] == coll0 + added - funding
    assert e.bal("WETH", mine) == held - E18
    g.sync_funding("ETH-long")
    before = g.health(o, "ETH-long")
    rc = e.frozen(v.withdrawExcess(r, 2_000 * USD30), e.keeper)
    (ev,) = e.events(rc)
    assert ev["action"] == WITHDRAW_EXCESS and ev["healthBefore"] == before
    assert ev["healthAfter"] == g.health(o, "ETH-long", rc["blockNumber"]) >= FLOOR
    assert 0 < ev["amount"] <= g.vault.functions.usdToTokenMin(e.tok["WETH"].address, 2_000 * USD30).call()
    assert e.bal("WETH", mine) == held - E18 + ev["amount"]
    assert e.bal("WETH", o) == owner_weth  # nothing ever reaches the owner's address


def test_withdraw_excess_on_gated_gmx_respects_the_floor(gated):
    """Gated mode at rest: decreasePosition works without leverage; GMX validates the position at
    the Vault's at-rest 5% margin fee, the vault at its floor (liquidation fee)."""
    e = world(gated)
    g, v, mine = e.gmx, e.vault.functions, e.vault.address
    open_vault_positions(e)
    r = ref(e, "ETH-long", mine)
    g.sync_funding("ETH-long")
    health = g.health(mine, "ETH-long")
    assert health > FLOOR
    size = g.position(mine, "ETH-long")[0]
    max_leverage = g.vault.functions.maxLeverage().call()

    def remaining_at(h: int) -> int:  # GMX: health = remaining * maxLeverage / size (binding here)
        return h * size * 10_000 // (max_leverage * E18)

    too_much = remaining_at(health) - remaining_at(FLOOR) + USD30  # $1 past the floor
    r_err = e.err(v.withdrawExcess(r, too_much), e.keeper)
    assert r_err.name == "BelowHealthFloor" and r_err.args[1] == FLOOR and r_err.args[0] < FLOOR
    held = e.bal("WETH", mine)
    amount = too_much - 2 * USD30  # $1 inside it
    rc = e.frozen(v.withdrawExcess(r, amount), e.keeper)
    (ev,) = e.events(rc)
    assert FLOOR <= ev["healthAfter"] == g.health(mine, "ETH-long", rc["blockNumber"])
    assert e.bal("WETH", mine) == held + ev["amount"] and ev["amount"] > 0
    # With the floor at the vault's minimum (1.05), GMX's at-rest check is the tighter one: it keeps the
    # funding fee + 5% of the size ($1,000) + $5 in the position, i.e. refuses to go past ~20x
    # although at the liquidation fee (0.1%) the position would still be at ~2.5.
    e.send(v.setPerpMarket(g.vault.address, *g.params("ETH-long"), True, 105 * E18 // 100), e.owner)
    g.sync_funding("ETH-long")
    collateral, funding = g.position(mine, "ETH-long")[1], g.funding_fee(mine, "ETH-long")
    left = size * 500 // 10_000 + funding + 2 * USD30  # above the fees, below fees + $5
    r_err = e.err(v.withdrawExcess(r, collateral - left), e.keeper)
    assert r_err.name == "Vault: liquidation fees exceed collateral", r_err


# ---------------------------------------------------------------------------------- owner batches
def test_owner_margin_in_one_batch_cannot_be_taken(direct):
    """The audit's theft on GMX v1 (direct mode): GMX credits tokens sent to its Vault to whoever
    calls `increasePosition` next, so an owner who sends margin in one `execute` and credits it in
    the next is robbed in between (the control, below). In one `executeBatch` nothing is ever loose:
    the margin lands in the owner's position and the thief finds nothing; a batch with a failing call
    moves nothing."""
    e = world(direct)
    g, v, o, mine, thief = e.gmx, e.vault.functions, e.owner, e.vault.address, e.stranger
    open_vault_positions(e)
    weth = e.tok["WETH"]
    coll, index, _ = g.params("ETH-long")
    send_margin = (weth.address, 0, bytes.fromhex(weth.encode_abi("transfer", [g.vault.address, 2 * E18])[2:]))
    credit = (g.vault.address, 0, bytes.fromhex(g.vault.encode_abi("increasePosition",
                                                                   [mine, coll, index, 0, True])[2:]))
    steal = g.vault.functions.increasePosition(thief, coll, index, 5_000 * USD30, True)
    before = g.position(mine, "ETH-long")[1]

    snap = evm_snapshot(e.w3)  # control: two transactions
    e.send(v.execute(*send_margin), o)
    e.send(steal, thief)
    assert g.position(thief, "ETH-long")[1] > 3_000 * USD30  # the owner's 2 WETH are the thief's margin
    e.send(v.execute(*credit), o)
    assert g.position(mine, "ETH-long")[1] == before  # the owner's second call "succeeds" adding $0
    evm_revert(e.w3, snap)

    held = e.bal("WETH", mine)
    e.send(v.executeBatch([send_margin, credit]), o)
    assert e.bal("WETH", mine) == held - 2 * E18
    assert g.position(mine, "ETH-long")[1] > before + 3_000 * USD30  # $4,000 less GMX's deposit fee
    with pytest.raises(Reverted):
        e.send(steal, thief)
    assert g.position(thief, "ETH-long")[0] == 0
    # all or nothing: the second call reverts (the vault is no router of the thief's), so the
    # transfer before it is undone too
    foreign = (g.vault.address, 0, bytes.fromhex(g.vault.encode_abi("increasePosition",
                                                                    [thief, coll, index, 0, True])[2:]))
    r = e.err(v.executeBatch([send_margin, foreign]), o)
    assert r.name == "Vault: invalid msg.sender", r
    assert e.bal("WETH", mine) == held - 2 * E18
    assert e.err(v.executeBatch([send_margin]), thief).name == "NotOwner"
