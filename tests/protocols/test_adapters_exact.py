"""Adapter health equals each protocol's own answer to the wei, on the devnet, for every seeded
position and after random price moves and elapsed time:
- Aave: ``Pool.getUserAccountData``;
- Morpho: the exact feed answer at which ``liquidate`` starts to succeed in ``eth_call``;
- perps: ``validateLiquidation`` (and ``liquidatePosition`` in ``eth_call``)."""

import random

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.domain import WAD, Protocol, Side
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
            want = pool.functions.getUserAccountData(p.account).call(block_identifier=snap.block)[5]
            assert p.health_wad == want
            # The legs are the pool's own balances.
            a_weth = w3.eth.contract(address=devnet["aave_v3"]["a_tokens"]["WETH"], abi=C.ours("TestERC20").abi)
            weth_leg = next(l for l in p.legs if l.asset.symbol == "WETH" and l.side is Side.COLLATERAL)
            assert weth_leg.amount_raw == a_weth.functions.balanceOf(p.account).call(block_identifier=snap.block)


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
        (pos,) = [p for p in snap.positions if p.protocol is Protocol.MORPHO_BLUE and p.account == borrower]
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


def perp_liquidation_succeeds(w3, devnet, p, block) -> bool:
    perp = w3.eth.contract(address=devnet["perp"]["vault"], abi=C.ours("PerpVault").abi)
    coll, index, side = p.market.split(":")
    data = perp.encode_abi("liquidatePosition", [p.account, Web3.to_checksum_address(coll),
                                                 Web3.to_checksum_address(index), side == "long",
                                                 devnet["roles"]["liquidator"]])
    try:
        w3.eth.call({"from": devnet["roles"]["liquidator"], "to": perp.address, "data": data}, block)
        return True
    except Exception:
        return False


@pytest.mark.parametrize("seed", range(3))
def test_perp_health_matches_validate_liquidation(reader, w3, devnet, seed):
    rng = random.Random(seed)
    perp = w3.eth.contract(address=devnet["perp"]["vault"], abi=C.ours("PerpVault").abi)
    seen_liquidatable = seen_healthy = False
    for step in range(6):
        eth = 1_500 if step == 0 else rng.randint(1_500, 2_300)  # the first step always crashes the 5x long
        set_answer(w3, devnet, "ETH", eth * 10**8)
        set_answer(w3, devnet, "BTC", rng.randint(25_000, 42_000) * 10**8)
        advance(w3, rng.randint(0, 5) * 3_600)
        snap = reader.read()
        for p in [p for p in snap.positions if p.protocol is Protocol.PERP]:
            coll, index, side = p.market.split(":")
            args = (p.account, Web3.to_checksum_address(coll), Web3.to_checksum_address(index), side == "long")
            # validateLiquidation after the funding update a liquidator would trigger (one eth_call via multicall)
            state, fees = _validate_after_funding(w3, devnet, perp, args, snap.block)
            assert p.perp.liquidation_state == state
            assert p.extra["margin_fees"] == fees
            assert (p.health_wad < WAD) == (state != 0)
            assert (p.health_wad < WAD) == perp_liquidation_succeeds(w3, devnet, p, snap.block)
            seen_liquidatable |= state != 0
            seen_healthy |= state == 0
    assert seen_healthy and seen_liquidatable


def _validate_after_funding(w3, devnet, perp, args, block):
    from eth_abi import decode

    from keeper.chain.client import ChainClient
    from keeper.chain.multicall import Call, Multicall

    mc = Multicall(ChainClient("devnet", [w3.provider.endpoint_uri], 31337), devnet["multicall3"], in_flight=1)
    upd = Call(perp.address, bytes.fromhex(perp.encode_abi("updateCumulativeFundingRate", [args[1], args[2]])[2:]))
    val = Call(perp.address, bytes.fromhex(perp.encode_abi("validateLiquidation", [*args, False])[2:]), False)
    (res,) = mc.call([val], block, prefix=[upd])
    return decode(["uint256", "uint256"], res.data)
