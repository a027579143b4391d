"""Morpho's pre-liquidation on the devnet, from the pinned upstream build (morpho-org/pre-liquidation,
``build/morpho-preliq/``) against the devnet's real Morpho Blue: a PreLiquidation contract made by the
deployed factory for the WETH/USDC market, authorised by a borrower, lets a third party repay part of
the debt at a small incentive once the position's LTV passes the pre-LLTV, with no keeper running.
That partial pre-liquidation keeps the position out of reach of a full Morpho liquidation at a price
where the same position without it is liquidated."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.errors import Reverted
from tests.conftest import evm_revert, evm_snapshot
from tests.devnet.helpers import position, set_price, token

pytestmark = pytest.mark.usefixtures("snapshot")

WAD, E6 = 10**18, 10**6
MAX = 2**256 - 1
PARAMS = (80 * WAD // 100, 10 * WAD // 100, 50 * WAD // 100, 101 * WAD // 100, 104 * WAD // 100)


def _world(w3, devnet):
    m = devnet["morpho_blue"]["markets"]["WETH/USDC"]
    admin = Deployer(w3, devnet["roles"]["admin"])
    morpho = admin.at(devnet["morpho_blue"]["morpho"], C.third_party("Morpho"))
    factory = admin.at(devnet["morpho_blue"]["preliq_factory"], C.preliq("PreLiquidationFactory"))
    mid = bytes.fromhex(m["id"][2:])
    params = (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], m["lltv"])
    return admin, morpho, factory, mid, params, m["oracle"]


def _ltv(morpho, mid, who, eth: float) -> float:
    _supply_shares, borrow_shares, collateral = morpho.functions.position(mid, who).call()
    _ts, _ss, total_borrow, total_borrow_shares, _lu, _fee = morpho.functions.market(mid).call()
    debt = borrow_shares * total_borrow / total_borrow_shares / E6
    return debt / (collateral / WAD * eth)


def test_a_pre_liquidation_saves_a_morpho_position_from_a_full_liquidation(w3, devnet):
    admin, morpho, factory, mid, params, oracle = _world(w3, devnet)
    bob = position(devnet, "bob-morpho")["account"]  # 3 WETH, 4,000 USDC, LLTV 0.86: LTV 0.67 at ETH 2,000
    liquidator = devnet["roles"]["liquidator"]
    usdc = token(w3, devnet, "USDC")

    rc = admin.send(factory.functions.createPreLiquidation(mid, (*PARAMS, oracle)))
    (ev,) = factory.events.CreatePreLiquidation().process_receipt(rc, errors=DISCARD)  # the new contract's own logs too
    pre = admin.at(ev.args.preLiquidation, C.preliq("PreLiquidation"))
    assert factory.functions.isPreLiquidation(pre.address).call()
    assert tuple(pre.functions.preLiquidationParams().call())[:5] == PARAMS

    admin.send(usdc.functions.mint(liquidator, 100_000 * E6))
    admin.send(usdc.functions.approve(pre.address, MAX), sender=liquidator)
    admin.send(usdc.functions.approve(morpho.address, MAX), sender=liquidator)

    def pre_liquidate(shares: int):
        return admin.send(pre.functions.preLiquidate(bob, 0, shares, b""), sender=liquidator)

    def liquidate():
        shares = morpho.functions.position(mid, bob).call()[1]
        return admin.send(morpho.functions.liquidate(params, bob, 0, shares // 2, b""), sender=liquidator)

    set_price(w3, devnet, "ETH", 1_600)  # LTV 0.833: past the pre-LLTV 0.80, under the LLTV 0.86
    assert 0.80 < _ltv(morpho, mid, bob, 1_600) < 0.86
    with pytest.raises(Reverted):
        liquidate()  # healthy for Morpho: no liquidation yet
    shares = morpho.functions.position(mid, bob).call()[1]
    with pytest.raises(Reverted):
        pre_liquidate(shares // 10)  # bob has not authorised it: it cannot take his collateral

    # The control: without a pre-liquidation, at ETH 1,450 (LTV 0.92) a full liquidation goes through.
    snap = evm_snapshot(w3)
    set_price(w3, devnet, "ETH", 1_450)
    assert _ltv(morpho, mid, bob, 1_450) > 0.86
    assert liquidate()["status"] == 1
    evm_revert(w3, snap)

    admin.send(morpho.functions.setAuthorization(pre.address, True), sender=bob)
    too_many = shares * 60 // 100  # the close factor at LTV 0.833 is about 32 %
    with pytest.raises(Reverted):
        pre_liquidate(too_many)
    coll0 = morpho.functions.position(mid, bob).call()[2]
    rc = pre_liquidate(shares * 30 // 100)
    assert rc["status"] == 1
    coll1 = morpho.functions.position(mid, bob).call()[2]
    seized_weth = (coll0 - coll1) / WAD
    repaid = 4_000 * 0.30  # about, in USDC
    incentive = seized_weth * 1_600 / repaid
    assert 1.01 < incentive < 1.04  # a small incentive, between preLIF1 and preLIF2 (Morpho's own is 1.044)
    assert _ltv(morpho, mid, bob, 1_600) < 0.80  # out of the band

    # The crash goes on: back in the band at ETH 1,500, pre-liquidated again, by the same third party.
    set_price(w3, devnet, "ETH", 1_500)
    assert 0.80 < _ltv(morpho, mid, bob, 1_500) < 0.86
    assert pre_liquidate(morpho.functions.position(mid, bob).call()[1] * 30 // 100)["status"] == 1
    set_price(w3, devnet, "ETH", 1_450)
    assert _ltv(morpho, mid, bob, 1_450) < 0.86
    with pytest.raises(Reverted):
        liquidate()  # the same crash no longer reaches it


def test_the_devnets_pre_liquidation_bot_finds_and_pre_liquidates_an_opted_in_borrower(w3, devnet):
    """``keeper.devnet.preliquidator`` (what ``keeper devnet up`` runs): it finds a PreLiquidation the
    factory made and the borrower who authorised it from their events, and pre-liquidates the borrower
    once the LTV enters the band, with no keeper and no one else acting."""
    import time

    from keeper.devnet.preliquidator import start_thread

    admin, morpho, factory, mid, _params, oracle = _world(w3, devnet)
    bob = position(devnet, "bob-morpho")["account"]
    rc = admin.send(factory.functions.createPreLiquidation(mid, (*PARAMS, oracle)))
    (ev,) = factory.events.CreatePreLiquidation().process_receipt(rc, errors=DISCARD)
    admin.send(morpho.functions.setAuthorization(ev.args.preLiquidation, True), sender=bob)
    shares0 = morpho.functions.position(mid, bob).call()[1]
    thread, stop = start_thread(w3, devnet)
    try:
        set_price(w3, devnet, "ETH", 1_600)  # LTV 0.833: inside the band (0.80, 0.86]
        deadline = time.monotonic() + 30
        while morpho.functions.position(mid, bob).call()[1] == shares0 and time.monotonic() < deadline:
            time.sleep(0.2)
        shares1 = morpho.functions.position(mid, bob).call()[1]
        assert shares1 < shares0, "the bot did not pre-liquidate within 30 s"
        assert _ltv(morpho, mid, bob, 1_600) < 0.86  # partly repaid, never fully liquidated
    finally:
        stop.set()
        thread.join(timeout=10)
