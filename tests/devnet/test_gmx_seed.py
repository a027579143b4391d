"""The devnet's GMX v1 seeding leaves nothing to steal: pool liquidity goes in through GlpManager
(one transaction: pull into the Vault and buy USDG), never a bare transfer followed by a
directPoolDeposit, and the Vault ends with no loose tokens that the next caller would be credited."""

import pytest

from keeper.chain import contracts as C

pytestmark = pytest.mark.usefixtures("snapshot")


def test_pool_liquidity_went_in_atomically_and_nothing_is_loose(w3, devnet):
    gmx = devnet["perp"]
    vault = w3.eth.contract(address=gmx["vault"], abi=C.gmx("Vault").abi)
    manager = w3.eth.contract(address=gmx["glp_manager"], abi=C.gmx("GlpManager").abi)
    added = manager.events.AddLiquidity().get_logs(from_block=0, to_block="latest")
    deposits = vault.events.DirectPoolDeposit().get_logs(from_block=0, to_block="latest")
    assert len(added) >= 2 and deposits == []
    erc20 = C.ours("TestERC20").abi
    for sym in ("WETH", "WBTC", "USDC"):
        token = w3.eth.contract(address=devnet["tokens"][sym]["address"], abi=erc20)
        assert vault.functions.poolAmounts(token.address).call() > 0, sym
        # loose tokens (balance beyond what the Vault accounts for) are what a two-step flow leaves
        assert token.functions.balanceOf(vault.address).call() == vault.functions.tokenBalances(token.address).call()
