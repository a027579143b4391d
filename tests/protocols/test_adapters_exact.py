"""Adapter health equals each protocol's own answer to the wei, on the devnet, for every seeded
position and after random price moves and elapsed time:
- Aave: ``Pool.getUserAccountData``;
- Morpho: the exact feed answer at which ``liquidate`` starts to succeed in ``eth_call``;
- perps (GMX v1, gated and direct): ``liquidatePosition`` in ``eth_call`` (through the PositionManager
  where liquidations are private) and, where the Vault's at-rest fee is the liquidation fee,
  ``validateLiquidation``."""

import random

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.domain import WAD, Address, Protocol, Side
from tests.devnet.helpers import token
from tests.protocols.devnet_reader import devnet_reader

pytestmark = pytest.mark.usefixtures("snapshot")

MAX = 2**256 - 1


@pytest.fixture
def reader(anvil, devnet):
    r = devnet_reader(anvil.url, devnet)
    yield r
    r.mc.close()


def feed(w3, devnet, sym):
    return w3.eth.contract(address=devnet["feeds"][sym]["address"], abi=C.third_party("MockV3Aggregator").abi)


def set_answer(w3, devnet, sym, answer: int):
    Deployer(w3, devnet["roles"]["admin"]).send(feed(w3, devnet, sym).functions.updateAnswer(answer))


def advance(w3, seconds):
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


def test_every_seeded_position_is_read(reader, devnet):
    snap = reader.read()
    got = {(p.protocol.value, p.account.lower()) for p in snap.positions}
    want = {(p["protocol"], p["account"].lower()) for p in devnet["positions"]}
    assert got == want
    assert all(p.price_ok for p in snap.positions)


@pytest.mark.parametrize("seed", range(4))
def test_aave_health_equals_the_pool_after_random_moves(reader, w3, devnet, seed):
    rng = random.Random(seed)
    pool = w3.eth.contract(address=devnet["aave_v3"]["pool"], abi=C.aave("Pool").abi)
    for _ in range(3):
        set_answer(w3, devnet, "ETH", rng.randint(1_000, 3_000) * 10**8 + rng.randint(0, 10**8))
        set_answer(w3, devnet, "BTC", rng.randint(15_000, 45_000) * 10**8)
        advance(w3, rng.randint(1, 30 * 86_400))
        snap = reader.read()
        aave = [p for p in snap.positions if p.protocol is Protocol.AAVE_V3]
        assert len(aave) == sum(p["protocol"] == "aave_v3" for p in devnet["positions"])  # 5 accounts
        for p in aave:
            want = pool.functions.getUserAccountData(Web3.to_checksum_address(p.account)).call(
                block_identifier=snap.block)[5]
            assert p.health_wad == want
            # The legs are the pool's own balances.
            a_weth = w3.eth.contract(address=devnet["aave_v3"]["a_tokens"]["WETH"], abi=C.ours("TestERC20").abi)
            weth_leg = next(leg for leg in p.legs if leg.asset.symbol == "WETH" and leg.side is Side.COLLATERAL)
            assert weth_leg.amount_raw == a_weth.functions.balanceOf(Web3.to_checksum_address(p.account)).call(
                block_identifier=snap.block)


def morpho_liquidate_succeeds(w3, devnet, borrower, block) -> bool:
    m = devnet["morpho_blue"]["markets"]["WETH/USDC"]
    morpho = w3.eth.contract(address=devnet["morpho_blue"]["morpho"], abi=C.third_party("Morpho").abi)
    params = (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], m["lltv"])
    data = morpho.encode_abi("liquidate", [params, borrower, 1, 0, b""])  # seize 1 wei of collateral
    try:
        w3.eth.call({"from": devnet["roles"]["liquidator"], "to": morpho.address, "data": data}, block)
        return True
    except Exception as e:  # the revert reason decides
        assert "position is healthy" in str(e), e
        return False


def fund_liquidator(w3, devnet):
    d = Deployer(w3, devnet["roles"]["admin"])
    usdc = token(w3, devnet, "USDC")
    liq = devnet["roles"]["liquidator"]
    d.send(usdc.functions.mint(liq, 10**12))
    d.send(usdc.functions.approve(devnet["morpho_blue"]["morpho"], MAX), sender=liq)


@pytest.mark.parametrize("pid,days", [("alice-morpho", 0), ("bob-morpho", 45)])
def test_morpho_health_crosses_one_exactly_where_liquidate_starts_to_succeed(reader, w3, devnet, pid, days):
    fund_liquidator(w3, devnet)
    borrower = next(p["account"] for p in devnet["positions"] if p["id"] == pid)
    if days:
        advance(w3, days * 86_400)  # interest accrues; the read must include it exactly

    seen = []

    def liquidatable_at(answer):
        # Each price update mines a block (1 s later: interest accrues a little more), so every
        # probe compares the adapter's health and liquidate's outcome at that probe's own block.
        set_answer(w3, devnet, "ETH", answer)
        snap = reader.read()
        (pos,) = [p for p in snap.positions if p.protocol is Protocol.MORPHO_BLUE and p.account == Address(borrower)]
        ok = morpho_liquidate_succeeds(w3, devnet, borrower, snap.block)
        seen.append((answer, pos.health_wad, ok))
        return ok

    # Binary search the feed answer (8 decimals) where liquidation starts to succeed.
    lo, hi = 500 * 10**8, 2_000 * 10**8
    assert liquidatable_at(lo) and not liquidatable_at(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if liquidatable_at(mid):
            lo = mid
        else:
            hi = mid
    for answer, h, ok in seen:
        assert (h < WAD) == ok, (answer, h, ok)
    # The search ends on adjacent answers, one each side of the boundary: health within a hair of 1.
    nearest = min(abs(h - WAD) for _a, h, _ok in seen)
    assert nearest < WAD // 10**6
    assert any(ok for *_x, ok in seen) and any(not ok for *_x, ok in seen)


def perp_liquidation_succeeds(w3, dep, p, block) -> bool:
    """GMX v1's own liquidation in ``eth_call``: gated deployments liquidate privately through the
    PositionManager (inside ``enableLeverage``, at the execution margin fee) from a registered
    liquidator; direct ones let anyone call ``Vault.liquidatePosition``."""
    coll, index, side = p.market.split(":")
    args = [Web3.to_checksum_address(p.account), Web3.to_checksum_address(coll), Web3.to_checksum_address(index),
            side == "long", dep["roles"]["liquidator"]]
    target = dep["perp"]["position_manager" if dep["perp"]["mode"] == "gated" else "vault"]
    c = w3.eth.contract(address=target, abi=C.gmx("PositionManager" if dep["perp"]["mode"] == "gated" else "Vault").abi)
    try:
        w3.eth.call({"from": dep["roles"]["liquidator"], "to": target, "data": c.encode_abi("liquidatePosition", args)},
                    block)
        return True
    except Exception as e:  # only GMX's "cannot be liquidated" means healthy
        assert "position cannot be liquidated" in str(e), e
        return False


@pytest.fixture
def gmx_reader(gmx_net):
    r = devnet_reader(gmx_net.url, gmx_net.dep)
    yield r
    r.mc.close()


@pytest.mark.parametrize("seed", range(2))
def test_perp_health_is_gmx_liquidation_rule(gmx_reader, gmx_net, seed):
    """Random price moves and funding time: health < 1 exactly when GMX liquidates; where the Vault's
    at-rest margin fee is the liquidation fee (direct mode), state and fees equal validateLiquidation."""
    w3, dep = gmx_net.w3, gmx_net.dep
    rng = random.Random(seed)
    vault = w3.eth.contract(address=dep["perp"]["vault"], abi=C.gmx("Vault").abi)
    seen_liquidatable = seen_healthy = seen_profit = False
    for step in range(6):
        eth = 1_500 if step == 0 else rng.randint(1_500, 2_300)  # the first step always crashes the 5x long
        set_answer(w3, dep, "ETH", eth * 10**8)
        set_answer(w3, dep, "BTC", rng.randint(22_000, 42_000) * 10**8)
        advance(w3, rng.randint(0, 5) * 3_600)
        snap = gmx_reader.read()
        perps = [p for p in snap.positions if p.protocol is Protocol.PERP]
        assert len(perps) == 4 and all(p.price_ok for p in perps)
        for p in perps:
            coll, index, side = p.market.split(":")
            args = (Web3.to_checksum_address(p.account), Web3.to_checksum_address(coll),
                    Web3.to_checksum_address(index), side == "long")
            assert p.extra["gated"] is (gmx_net.mode == "gated")
            assert p.extra["liquidation_margin_fee_bps"] == dep["perp"]["margin_fee_bps"]
            if gmx_net.mode == "direct":
                state, fees = _validate_after_funding(w3, dep, vault, args, snap.block)
                assert (p.perp.liquidation_state, p.extra["margin_fees"]) == (state, fees)
            assert (p.health_wad < WAD) == (p.perp.liquidation_state != 0)
            assert (p.health_wad < WAD) == perp_liquidation_succeeds(w3, dep, p, snap.block)
            seen_liquidatable |= p.perp.liquidation_state != 0
            seen_healthy |= p.perp.liquidation_state == 0
            seen_profit |= p.extra["has_profit"] and p.extra["delta"] > 0
    assert seen_healthy and seen_liquidatable and seen_profit


@pytest.mark.parametrize("pid,sym,hours", [("alice-perp-eth-long", "ETH", 0),
                                           ("carol-perp-btc-short-unprotected", "BTC", 30)])
def test_perp_health_crosses_one_where_gmx_starts_to_liquidate(gmx_net, pid, sym, hours):
    """Bisect the feed answer where GMX's liquidation starts to succeed (after funding time for the
    short): the adapter's health is below 1 exactly on the liquidatable side of it."""
    w3, dep = gmx_net.w3, gmx_net.dep
    reader = devnet_reader(gmx_net.url, dep)
    account = next(p["account"] for p in dep["positions"] if p["id"] == pid)
    if hours:
        advance(w3, hours * 3_600)
    seen = []

    def liquidatable_at(answer):
        set_answer(w3, dep, sym, answer)
        snap = reader.read()
        (pos,) = [p for p in snap.positions if p.protocol is Protocol.PERP and p.account == Address(account)
                  and p.perp.index.symbol == ("WETH" if sym == "ETH" else "WBTC")]
        ok = perp_liquidation_succeeds(w3, dep, pos, snap.block)
        seen.append((answer, pos.health_wad, ok))
        return ok

    start = dep["feeds"][sym]
    agg = w3.eth.contract(address=start["address"], abi=C.third_party("MockV3Aggregator").abi)
    price0 = agg.functions.latestAnswer().call()
    long = sym == "ETH"
    lo, hi = (price0 // 3, price0) if long else (price0 * 3, price0)  # (liquidatable, healthy)
    assert liquidatable_at(lo) and not liquidatable_at(hi)
    while abs(hi - lo) > 1:
        mid = (lo + hi) // 2
        if liquidatable_at(mid):
            lo = mid
        else:
            hi = mid
    reader.mc.close()
    for answer, h, ok in seen:
        assert (h < WAD) == ok, (answer, h, ok)
    assert min(abs(h - WAD) for _a, h, _ok in seen) < WAD // 10**4
def _validate_after_funding(w3, devnet, perp, args, block):
    """``validateLiquidation(..., false)`` after the funding update a liquidation would make first."""
    from eth_abi import decode

    from keeper.chain.client import ChainClient
    from keeper.chain.multicall import Call, Multicall

    mc = Multicall(ChainClient("devnet", [w3.provider.endpoint_uri], 31337), devnet["multicall3"], in_flight=1)
    upd = Call(perp.address, bytes.fromhex(perp.encode_abi("updateCumulativeFundingRate", [args[1], args[2]])[2:]))
    val = Call(perp.address, bytes.fromhex(perp.encode_abi("validateLiquidation", [*args, False])[2:]), False)
    (res,) = mc.call([val], block, prefix=[upd])
    return decode(["uint256", "uint256"], res.data)


@pytest.mark.parametrize("eth", [2_000, 1_750])
def test_perp_release_cap_is_what_gmx_lets_leave(gmx_reader, gmx_net, eth):
    """``release_cap_usd``: GMX's own decreasePosition (eth_call from the position's account) takes a
    collateral withdrawal just under it and refuses one just over it (gated: at the 5% at-rest fee)."""
    w3, dep = gmx_net.w3, gmx_net.dep
    set_answer(w3, dep, "ETH", eth * 10**8)
    snap = gmx_reader.read()
    vault = w3.eth.contract(address=dep["perp"]["vault"], abi=C.gmx("Vault").abi)
    alice = dep["keeper_vaults"]["alice"]["address"].lower()
    for p in [p for p in snap.positions if p.protocol is Protocol.PERP and p.account.lower() == alice]:
        coll, index, side = p.market.split(":")
        cap = int(p.perp.release_cap_usd * 10**30)
        assert cap > 10**30  # seeded 5x / 3x positions: something may leave

        def leaves(usd: int, p=p, coll=coll, index=index, side=side) -> bool:
            fn = vault.functions.decreasePosition(Web3.to_checksum_address(p.account), Web3.to_checksum_address(coll),
                                                  Web3.to_checksum_address(index), usd, 0, side == "long",
                                                  Web3.to_checksum_address(p.account))
            try:
                fn.call({"from": Web3.to_checksum_address(p.account)}, snap.block)
                return True
            except Exception as e:  # GMX's own refusal of what would stay
                assert "Vault:" in str(e), e
                return False

        assert leaves(cap * 999 // 1000) and not leaves(cap * 1001 // 1000 + 10**30)
