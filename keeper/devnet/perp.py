"""Deploy our PerpVault (GMX v1 Vault subset) with ETH and BTC markets priced by the devnet's
Chainlink feeds, and seed its liquidity pool."""

from __future__ import annotations

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer


def deploy_perp(d: Deployer, tokens: dict[str, dict], admin: str, lp: str, pool_liquidity: dict[str, int]) -> dict:
    """``tokens``: symbol -> {address, decimals, feed}. Longs use WETH/WBTC as collateral, shorts
    use USDC (GMX v1: a short's collateral is a stable token)."""
    perp = d.deploy(C.ours("PerpVault"), sender=admin)
    config = {"WETH": (False, True), "WBTC": (False, True), "USDC": (True, False)}
    for sym, (is_stable, is_shortable) in config.items():
        t = tokens[sym]
        d.send(perp.functions.setTokenConfig(t["address"], t["decimals"], t["feed"], is_stable, is_shortable),
               sender=admin)
    erc20 = C.ours("TestERC20")
    for sym, amount in pool_liquidity.items():
        token = d.at(tokens[sym]["address"], erc20)
        d.send(token.functions.mint(lp, amount), sender=lp)
        d.send(token.functions.transfer(perp.address, amount), sender=lp)
        d.send(perp.functions.directPoolDeposit(token.address), sender=lp)
    return {
        "vault": perp.address,
        "max_leverage_bps": perp.functions.maxLeverage().call(),
        "liquidation_fee_usd": perp.functions.liquidationFeeUsd().call(),
        "margin_fee_bps": perp.functions.marginFeeBasisPoints().call(),
        "markets": {
            "ETH-long": {"collateral_token": tokens["WETH"]["address"], "index_token": tokens["WETH"]["address"], "is_long": True},
            "ETH-short": {"collateral_token": tokens["USDC"]["address"], "index_token": tokens["WETH"]["address"], "is_long": False},
            "BTC-long": {"collateral_token": tokens["WBTC"]["address"], "index_token": tokens["WBTC"]["address"], "is_long": True},
            "BTC-short": {"collateral_token": tokens["USDC"]["address"], "index_token": tokens["WBTC"]["address"], "is_long": False},
        },
    }
