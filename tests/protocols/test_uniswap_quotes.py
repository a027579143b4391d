"""The keeper's Uniswap v3 reads (``keeper.protocols.uniswap_v3``) on the devnet's real pools: the
quote is the QuoterV2's and what the SwapRouter then pays; the pool state is the pool's; a pool
that does not exist cannot be quoted."""

from __future__ import annotations

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.devnet.deployer import Deployer
from keeper.devnet.uniswap import DEADLINE
from keeper.domain import Address
from keeper.errors import Reverted
from keeper.protocols.uniswap_v3 import pool_state, quote_exact_input

pytestmark = pytest.mark.usefixtures("snapshot")


def test_the_quote_is_what_the_router_pays(anvil, w3, devnet):
    client = ChainClient("devnet", [anvil.url], devnet["chain_id"])
    uni, tokens = devnet["uniswap_v3"], devnet["tokens"]
    weth, usdc = Address(tokens["WETH"]["address"]), Address(tokens["USDC"]["address"])
    block = w3.eth.block_number
    q = quote_exact_input(client, Address(uni["quoter"]), weth, usdc, uni["fee"], 5 * 10**18, block)
    assert q.amount_in == 5 * 10**18 and 9_900 * 10**6 < q.amount_out < 10_000 * 10**6
    assert q.gas_estimate > 50_000
    # the same swap through the router, from a trader with 5 WETH
    trader = Web3.to_checksum_address(devnet["roles"]["liquidator"])
    d = Deployer(w3, devnet["roles"]["admin"])
    erc20 = C.ours("TestERC20").abi
    t_in = w3.eth.contract(address=Web3.to_checksum_address(weth), abi=erc20)
    t_out = w3.eth.contract(address=Web3.to_checksum_address(usdc), abi=erc20)
    d.send(t_in.functions.mint(trader, 5 * 10**18))
    d.send(t_in.functions.approve(uni["router"], 5 * 10**18), sender=trader)
    before = t_out.functions.balanceOf(trader).call()
    router = w3.eth.contract(address=uni["router"], abi=C.uniswap("SwapRouter").abi)
    d.send(router.functions.exactInputSingle((t_in.address, t_out.address, uni["fee"], trader, DEADLINE,
                                              5 * 10**18, 0, 0)), sender=trader)
    assert t_out.functions.balanceOf(trader).call() - before == q.amount_out
    # the pool's state moved to the quote's "after" price
    pool = uni["pools"]["WETH/USDC"]
    assert pool_state(client, Address(pool["address"]), w3.eth.block_number).sqrt_price_x96 == q.sqrt_price_after_x96


def test_pool_state_prices_the_pool_at_the_feed(anvil, w3, devnet):
    client = ChainClient("devnet", [anvil.url], devnet["chain_id"])
    tokens = devnet["tokens"]
    for pair, want in (("WETH/USDC", 2_000.0), ("WBTC/USDC", 30_000.0)):
        pool = devnet["uniswap_v3"]["pools"][pair]
        s = pool_state(client, Address(pool["address"]), w3.eth.block_number)
        assert s.liquidity > 0
        p0 = s.price_of_token0(tokens[pool["symbol0"]]["decimals"], tokens[pool["symbol1"]]["decimals"])
        price = p0 if pool["symbol0"] == pool["base"] else 1 / p0
        assert price == pytest.approx(want, rel=1e-6)


def test_a_pool_that_does_not_exist_cannot_be_quoted(anvil, w3, devnet):
    client = ChainClient("devnet", [anvil.url], devnet["chain_id"], retries=0)
    uni, tokens = devnet["uniswap_v3"], devnet["tokens"]
    with pytest.raises(Reverted):  # no 0.05 % WETH/USDC pool on the devnet
        quote_exact_input(client, Address(uni["quoter"]), Address(tokens["WETH"]["address"]),
                          Address(tokens["USDC"]["address"]), 500, 10**18, w3.eth.block_number)
    with pytest.raises(ValueError):
        quote_exact_input(client, Address(uni["quoter"]), Address(tokens["WETH"]["address"]),
                          Address(tokens["USDC"]["address"]), uni["fee"], 0, w3.eth.block_number)
