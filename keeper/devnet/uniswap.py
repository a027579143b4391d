"""Uniswap v3 on the devnet, from the compiled artifacts ``@uniswap/v3-core`` and
``@uniswap/v3-periphery`` ship on npm: the factory, ``SwapRouter``, ``QuoterV2`` and the
``NonfungiblePositionManager``, and one pool per volatile asset against USDC (0.3 % fee), seeded by
the liquidity provider around the feed price.

Depth: each pool gets ``depth_usd`` of liquidity, half in each token, spread over a price range of
``RANGE`` either side of the feed price (concentrated liquidity, as most of a real pool's sits near
the price). A thin pool (small ``depth_usd``) is how the tests meet slippage.

:func:`arbitrage` moves a pool's price back to its feed the way arbitrageurs do on a real chain: one
router swap with the feed's price as its limit, so the pool stops there. The crash demo and the tests
run it after each price move, so that what the keeper quotes and swaps is realistic."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer

FEE = 3000  # 0.3 %, tick spacing 60
SPACING = {500: 10, 3000: 60, 10000: 200}  # the factory's fee tiers and their tick spacings
RANGE = 2.0  # liquidity from price / RANGE to price * RANGE
DEFAULT_DEPTH_USD = 20_000_000.0
Q96 = 2**96
MIN_SQRT_RATIO = 4295128739 + 1  # TickMath's bounds, exclusive
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342 - 1
DEADLINE = 2**64
ZERO = "0x" + "00" * 20


def _fraction(x: float) -> Fraction:
    return Fraction(x).limit_denominator(10**12)


def sqrt_price_x96(price0_usd: float, decimals0: int, price1_usd: float, decimals1: int) -> int:
    """The pool's ``sqrtPriceX96`` (Q64.96 square root of token1 base units per token0 base unit) at
    the tokens' USD prices, rounded down."""
    if price0_usd <= 0 or price1_usd <= 0:
        raise ValueError("prices must be positive")
    p = _fraction(price0_usd) / _fraction(price1_usd) * Fraction(10) ** (decimals1 - decimals0)
    return math.isqrt(p.numerator * Q96 * Q96 // p.denominator)


def price_of_token0(sqrt_x96: int, decimals0: int, decimals1: int) -> float:
    """Token0's price in whole token1 at ``sqrtPriceX96``."""
    return float((sqrt_x96 / Q96) ** 2 * 10.0 ** (decimals0 - decimals1))


def tick_of(sqrt_x96: int) -> int:
    """The tick at or below ``sqrtPriceX96`` (floating point: only for placing liquidity)."""
    return math.floor(2 * math.log(sqrt_x96 / Q96) / math.log(1.0001))


@dataclass(frozen=True)
class PoolSpec:
    """A pool of ``symbol`` against ``quote`` (the addresses sort into token0/token1 on chain)."""

    symbol: str
    quote: str = "USDC"
    depth_usd: float = DEFAULT_DEPTH_USD
    fee: int = FEE


def deploy_uniswap(d: Deployer, tokens: dict[str, dict[str, Any]], prices: dict[str, float], *, weth: str, lp: str,
                   pools: tuple[PoolSpec, ...] = (PoolSpec("WETH"), PoolSpec("WBTC"))) -> dict[str, Any]:
    """The contracts and ``pools``, seeded by ``lp`` at ``prices`` (USD per token symbol); tokens are
    minted to ``lp`` by the admin (``d.sender``). Returns the deployment's ``uniswap_v3`` entry."""
    factory = d.deploy(C.uniswap("UniswapV3Factory"))
    router = d.deploy(C.uniswap("SwapRouter"), factory.address, Web3.to_checksum_address(weth))
    quoter = d.deploy(C.uniswap("QuoterV2"), factory.address, Web3.to_checksum_address(weth))
    manager = d.deploy(C.uniswap("NonfungiblePositionManager"), factory.address, Web3.to_checksum_address(weth),
                       ZERO)
    out: dict[str, Any] = {"factory": factory.address, "router": router.address, "quoter": quoter.address,
                           "position_manager": manager.address, "fee": FEE, "pools": {}}
    for spec in pools:
        out["pools"][f"{spec.symbol}/{spec.quote}"] = _add_pool(d, manager, factory, tokens, prices, spec, lp)
    return out


def add_pool(d: Deployer, uni: dict[str, Any], tokens: dict[str, dict[str, Any]], prices: dict[str, float],
             spec: PoolSpec, lp: str) -> dict[str, Any]:
    """One more pool on a deployed ``uni`` (a thin one, another fee tier), seeded by ``lp`` at
    ``prices``: its entry, also added to ``uni["pools"]`` as ``"<symbol>/<quote>@<fee>"``."""
    manager = d.at(uni["position_manager"], C.uniswap("NonfungiblePositionManager"))
    factory = d.at(uni["factory"], C.uniswap("UniswapV3Factory"))
    entry = _add_pool(d, manager, factory, tokens, prices, spec, lp)
    uni["pools"][f"{spec.symbol}/{spec.quote}@{spec.fee}"] = entry
    return entry


def _add_pool(d: Deployer, manager: Any, factory: Any, tokens: dict[str, dict[str, Any]], prices: dict[str, float],
              spec: PoolSpec, lp: str) -> dict[str, Any]:
    base, quote = tokens[spec.symbol], tokens[spec.quote]
    a, b = Web3.to_checksum_address(base["address"]), Web3.to_checksum_address(quote["address"])
    (t0, s0), (t1, s1) = sorted([(a, spec.symbol), (b, spec.quote)], key=lambda x: int(x[0], 16))
    dec0, dec1 = tokens[s0]["decimals"], tokens[s1]["decimals"]
    sqrt_p = sqrt_price_x96(prices[s0], dec0, prices[s1], dec1)
    fee, spacing = spec.fee, SPACING[spec.fee]
    d.send(manager.functions.createAndInitializePoolIfNecessary(t0, t1, fee, sqrt_p))
    pool = factory.functions.getPool(t0, t1, fee).call()
    # Liquidity from price / RANGE to price * RANGE (ticks on the spacing), half the depth each side.
    centre, width = tick_of(sqrt_p), math.log(RANGE) / math.log(1.0001)
    lower = math.floor((centre - width) / spacing) * spacing
    upper = math.ceil((centre + width) / spacing) * spacing
    amount0 = int(spec.depth_usd / 2 / prices[s0] * 10**dec0)
    amount1 = int(spec.depth_usd / 2 / prices[s1] * 10**dec1)
    erc20 = C.ours("TestERC20").abi
    for token, amount in ((t0, amount0), (t1, amount1)):
        contract = d.w3.eth.contract(address=token, abi=erc20)
        d.send(contract.functions.mint(lp, amount))
        d.send(contract.functions.approve(manager.address, amount), sender=lp)
    d.send(manager.functions.mint((t0, t1, fee, lower, upper, amount0, amount1, 0, 0, Web3.to_checksum_address(lp),
                                   DEADLINE)), sender=lp)
    return {"address": pool, "base": spec.symbol, "quote": spec.quote, "token0": t0, "token1": t1,
            "symbol0": s0, "symbol1": s1, "fee": fee,
            "tick_lower": lower, "tick_upper": upper, "depth_usd": spec.depth_usd}


def pool_price(w3: Web3, pool: dict[str, Any], tokens: dict[str, dict[str, Any]]) -> float:
    """The pool's price of its base asset (the non-quote token) in the quote token."""
    slot0 = w3.eth.contract(address=pool["address"], abi=C.uniswap("UniswapV3Pool").abi).functions.slot0().call()
    p0 = price_of_token0(slot0[0], tokens[pool["symbol0"]]["decimals"], tokens[pool["symbol1"]]["decimals"])
    return p0 if pool["symbol0"] == pool["base"] else 1.0 / p0


def arbitrage(d: Deployer, uni: dict[str, Any], pair: str, tokens: dict[str, dict[str, Any]],
              prices: dict[str, float], trader: str) -> bool:
    """Move ``pair``'s pool price to ``prices`` (USD per symbol) with one ``exactInputSingle`` whose
    price limit is the target, from ``trader`` (tokens minted as needed, as an arbitrageur's
    inventory). Returns False when the pool is at the target already (within one unit of its
    sqrt price) or the range has no liquidity at the target."""
    pool = uni["pools"][pair]
    s0, s1 = pool["symbol0"], pool["symbol1"]
    target = sqrt_price_x96(prices[s0], tokens[s0]["decimals"], prices[s1], tokens[s1]["decimals"])
    target = min(max(target, MIN_SQRT_RATIO), MAX_SQRT_RATIO)
    w3 = d.w3
    now = w3.eth.contract(address=pool["address"], abi=C.uniswap("UniswapV3Pool").abi).functions.slot0().call()[0]
    if abs(now - target) <= 1:
        return False
    zero_for_one = target < now  # token0 too dear in the pool: sell token0 until its price falls to the target
    token_in, token_out = (pool["token0"], pool["token1"]) if zero_for_one else (pool["token1"], pool["token0"])
    sym_in = s0 if zero_for_one else s1
    # Enough of the input token for any move inside the seeded range: the whole depth in it.
    amount = int(pool["depth_usd"] / prices[sym_in] * 10 ** tokens[sym_in]["decimals"]) * 2
    erc20 = w3.eth.contract(address=token_in, abi=C.ours("TestERC20").abi)
    d.send(erc20.functions.mint(Web3.to_checksum_address(trader), amount))
    d.send(erc20.functions.approve(uni["router"], amount), sender=trader)
    router = w3.eth.contract(address=uni["router"], abi=C.uniswap("SwapRouter").abi)
    d.send(router.functions.exactInputSingle((token_in, token_out, pool["fee"], Web3.to_checksum_address(trader),
                                              DEADLINE, amount, 0, target)), sender=trader)
    return True


def stock_arbitrageur(d: Deployer, uni: dict[str, Any], tokens: dict[str, dict[str, Any]],
                      prices: dict[str, float], trader: str) -> None:
    """Give ``trader`` an inventory of every pool token (twice each pool's depth) and approve the
    router for it, so :func:`send_arbitrage` can trade without waiting for anything."""
    erc20 = C.ours("TestERC20").abi
    need: dict[str, int] = {}
    for pool in uni["pools"].values():
        for sym in (pool["symbol0"], pool["symbol1"]):
            need[sym] = need.get(sym, 0) + int(pool["depth_usd"] * 2 / prices[sym] * 10 ** tokens[sym]["decimals"])
    for sym, amount in need.items():
        token = d.w3.eth.contract(address=tokens[sym]["address"], abi=erc20)
        d.send(token.functions.mint(Web3.to_checksum_address(trader), amount))
        d.send(token.functions.approve(uni["router"], 2**256 - 1), sender=trader)


def send_arbitrage(w3: Web3, uni: dict[str, Any], pair: str, tokens: dict[str, dict[str, Any]],
                   prices: dict[str, float], trader: str) -> str | None:
    """:func:`arbitrage` without waiting (``trader`` stocked by :func:`stock_arbitrageur`): the swap
    is sent against the pool as of the latest block and lands with whatever else is pending (a
    feed update). Returns its hash, or None when the pool is at the target already."""
    pool = uni["pools"][pair]
    s0, s1 = pool["symbol0"], pool["symbol1"]
    target = sqrt_price_x96(prices[s0], tokens[s0]["decimals"], prices[s1], tokens[s1]["decimals"])
    target = min(max(target, MIN_SQRT_RATIO), MAX_SQRT_RATIO)
    now = w3.eth.contract(address=pool["address"], abi=C.uniswap("UniswapV3Pool").abi).functions.slot0().call()[0]
    if abs(now - target) <= 1:
        return None
    zero_for_one = target < now
    token_in, token_out = (pool["token0"], pool["token1"]) if zero_for_one else (pool["token1"], pool["token0"])
    sym_in = s0 if zero_for_one else s1
    amount = int(pool["depth_usd"] / prices[sym_in] * 10 ** tokens[sym_in]["decimals"])
    router = w3.eth.contract(address=uni["router"], abi=C.uniswap("SwapRouter").abi)
    tx = router.functions.exactInputSingle((token_in, token_out, pool["fee"], Web3.to_checksum_address(trader),
                                            DEADLINE, amount, 0, target)).transact(
        {"from": Web3.to_checksum_address(trader), "gas": 1_000_000})
    return "0x" + bytes(tx).hex()
