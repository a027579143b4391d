"""Uniswap v3 reads for deleverage planning: what a swap of the position's own collateral would pay,
from the protocol's own ``QuoterV2`` (which runs the pool's real swap and reverts with its result),
and a pool's state (``slot0``, ``liquidity``). Thin: encodes, calls at a pinned block, decodes;
errors come back as the chain client's (``Reverted`` when the quoter cannot quote, e.g. a pool that
does not exist or has no liquidity for the amount)."""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import decode, encode
from eth_utils.crypto import keccak

from keeper.chain.client import ChainClient
from keeper.domain import Address

# quoteExactInputSingle((address tokenIn, address tokenOut, uint256 amountIn, uint24 fee, uint160 sqrtPriceLimitX96))
_QUOTE_IN = keccak(text="quoteExactInputSingle((address,address,uint256,uint24,uint160))")[:4]
_SLOT0 = keccak(text="slot0()")[:4]
_LIQUIDITY = keccak(text="liquidity()")[:4]
Q96 = 2**96


@dataclass(frozen=True)
class Quote:
    """A quoted exact-input swap: ``amount_out`` (base units of the output token), the pool's price
    after it, the initialized ticks it crosses and the quoter's gas estimate of the swap."""

    amount_in: int
    amount_out: int
    sqrt_price_after_x96: int
    ticks_crossed: int
    gas_estimate: int


@dataclass(frozen=True)
class PoolState:
    sqrt_price_x96: int
    tick: int
    liquidity: int

    def price_of_token0(self, decimals0: int, decimals1: int) -> float:
        """Token0's price in whole token1."""
        return float((self.sqrt_price_x96 / Q96) ** 2 * 10.0 ** (decimals0 - decimals1))


def quote_exact_input(client: ChainClient, quoter: Address, token_in: Address, token_out: Address, fee: int,
                      amount_in: int, block: int) -> Quote:
    """What ``amount_in`` of ``token_in`` swaps for in the ``fee`` pool at ``block``, by the
    protocol's QuoterV2 (no price limit)."""
    if amount_in <= 0:
        raise ValueError("amount_in must be positive")
    data = _QUOTE_IN + encode(["(address,address,uint256,uint24,uint160)"],
                              [(token_in, token_out, amount_in, fee, 0)])
    out, after, crossed, gas = decode(["uint256", "uint160", "uint32", "uint256"],
                                      client.eth_call(quoter, data, block))
    return Quote(amount_in, out, after, crossed, gas)


def pool_state(client: ChainClient, pool: Address, block: int) -> PoolState:
    """The pool's current sqrt price, tick and in-range liquidity at ``block``."""
    slot0 = client.eth_call(pool, _SLOT0, block)
    sqrt_p, tick = decode(["uint160", "int24"], slot0[:64])
    (liquidity,) = decode(["uint128"], client.eth_call(pool, _LIQUIDITY, block))
    return PoolState(sqrt_p, tick, liquidity)
