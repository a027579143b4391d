"""Uniswap v3 on the devnet (``keeper.devnet.uniswap``), from the artifacts npm ships: the pools sit at
the feed prices, a swap through the real SwapRouter pays what the real QuoterV2 quotes, an arbitrage
swap brings a pool back to a moved feed, and a thin pool shows the price impact the keeper must bound."""

from __future__ import annotations

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.devnet.uniswap import (
    DEADLINE,
    PoolSpec,
    arbitrage,
    deploy_uniswap,
    pool_price,
    price_of_token0,
    sqrt_price_x96,
)

from .helpers import token

pytestmark = pytest.mark.usefixtures("snapshot")

FEEDS = {"WETH": 2_000.0, "WBTC": 30_000.0, "USDC": 1.0}


def test_sqrt_price_round_trips_through_the_pools_units():
    # WETH (18) as token0 against USDC (6): 2,000 USDC per WETH is 2e-9 raw per raw
    s = sqrt_price_x96(2_000.0, 18, 1.0, 6)
    assert price_of_token0(s, 18, 6) == pytest.approx(2_000.0, rel=1e-9)
    # the other order: USDC as token0, WETH as token1
    assert price_of_token0(sqrt_price_x96(1.0, 6, 2_000.0, 18), 6, 18) == pytest.approx(1 / 2_000.0, rel=1e-9)
    with pytest.raises(ValueError):
        sqrt_price_x96(0.0, 18, 1.0, 6)


def test_pools_start_at_the_feed_prices(w3, devnet):
    uni = devnet["uniswap_v3"]
    assert set(uni["pools"]) == {"WETH/USDC", "WBTC/USDC"}
    for pair, pool in uni["pools"].items():
        base = pair.split("/")[0]
        assert pool_price(w3, pool, devnet["tokens"]) == pytest.approx(FEEDS[base], rel=1e-6)
        # the factory knows it (the periphery's pool address derivation must match the core's code)
        factory = w3.eth.contract(address=uni["factory"], abi=C.uniswap("UniswapV3Factory").abi)
        assert factory.functions.getPool(pool["token0"], pool["token1"], pool["fee"]).call() == pool["address"]


def _quote(w3, uni, token_in, token_out, amount):
    quoter = w3.eth.contract(address=uni["quoter"], abi=C.uniswap("QuoterV2").abi)
    out, _after, _ticks, _gas = quoter.functions.quoteExactInputSingle(
        (token_in, token_out, amount, uni["fee"], 0)).call()
    return out


def _swap(w3, dep, trader, sym_in, sym_out, amount):
    d = Deployer(w3, dep["roles"]["admin"])
    uni = dep["uniswap_v3"]
    t_in, t_out = token(w3, dep, sym_in), token(w3, dep, sym_out)
    d.send(t_in.functions.mint(trader, amount))
    d.send(t_in.functions.approve(uni["router"], amount), sender=trader)
    before = t_out.functions.balanceOf(trader).call()
    router = w3.eth.contract(address=uni["router"], abi=C.uniswap("SwapRouter").abi)
    d.send(router.functions.exactInputSingle((t_in.address, t_out.address, uni["fee"], trader, DEADLINE, amount, 0, 0)),
           sender=trader)
    return t_out.functions.balanceOf(trader).call() - before


def test_a_router_swap_pays_the_quoters_quote_near_the_feed_price(w3, devnet):
    uni, trader = devnet["uniswap_v3"], Web3.to_checksum_address(devnet["roles"]["liquidator"])
    weth, usdc = devnet["tokens"]["WETH"]["address"], devnet["tokens"]["USDC"]["address"]
    amount = 10 * 10**18  # 10 WETH into a 20 M USD pool
    quoted = _quote(w3, uni, weth, usdc, amount)
    got = _swap(w3, devnet, trader, "WETH", "USDC", amount)
    assert got == quoted
    price = got / 10**6 / 10
    assert 2_000 * (1 - 0.003) * 0.995 < price < 2_000 * (1 - 0.003)  # the fee, and a small price impact


def test_arbitrage_brings_the_pool_back_to_a_moved_feed(w3, devnet):
    d = Deployer(w3, devnet["roles"]["admin"])
    tokens, uni = devnet["tokens"], devnet["uniswap_v3"]
    trader = Web3.to_checksum_address(devnet["roles"]["liquidator"])
    moved = {**FEEDS, "WETH": 1_500.0}
    assert arbitrage(d, uni, "WETH/USDC", tokens, moved, trader) is True
    assert pool_price(w3, uni["pools"]["WETH/USDC"], tokens) == pytest.approx(1_500.0, rel=1e-6)
    assert arbitrage(d, uni, "WETH/USDC", tokens, moved, trader) is False  # there already
    # and back up
    assert arbitrage(d, uni, "WETH/USDC", tokens, FEEDS, trader) is True
    assert pool_price(w3, uni["pools"]["WETH/USDC"], tokens) == pytest.approx(2_000.0, rel=1e-6)


def test_a_thin_pool_has_the_price_impact_of_its_depth(w3, devnet):
    d = Deployer(w3, devnet["roles"]["admin"])
    tokens = devnet["tokens"]
    # A second Uniswap deployment with a 100,000 USD WETH/USDC pool (the devnet's is 20 M)
    thin = deploy_uniswap(d, tokens, FEEDS, weth=tokens["WETH"]["address"], lp=devnet["roles"]["lp"],
                          pools=(PoolSpec("WETH", depth_usd=100_000.0),))
    weth, usdc = tokens["WETH"]["address"], tokens["USDC"]["address"]
    deep = _quote(w3, devnet["uniswap_v3"], weth, usdc, 10 * 10**18) / 10**6 / 10
    shallow = _quote(w3, thin, weth, usdc, 10 * 10**18) / 10**6 / 10
    assert deep > 2_000 * 0.99  # the 0.3 % fee and ~0.1 % of impact
    # 20,000 USD of WETH against 50,000 USD of USDC (concentrated over price / 2 .. price x 2): ~11 %
    assert shallow < 2_000 * 0.9 and 2_000 - shallow > 10 * (2_000 - deep)
