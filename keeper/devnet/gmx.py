"""Deploy GMX v1 (gmx-io/gmx-contracts, built at set-up into ``build/gmx-v1/``) on the devnet, priced
by the same Chainlink feeds that drive Aave and Morpho, with ETH and BTC markets and a seeded pool.

Two modes, both with a ``Timelock`` as the Vault's governor (as every GMX v1 deployment has):

- ``gated`` (default, as GMX v1 runs in production): the Vault's ``isLeverageEnabled`` is off and is
  switched on only inside PositionRouter / PositionManager executions (``Timelock.enableLeverage`` /
  ``disableLeverage``, ``shouldToggleIsLeverageEnabled``). At rest the Vault charges the Timelock's
  ``maxMarginFeeBasisPoints`` (5%); inside executions the ``marginFeeBasisPoints`` (0.1%).
  Liquidations are private (``inPrivateLiquidationMode``): only the PositionManager may liquidate,
  for its registered liquidators, inside ``enableLeverage`` (so at 0.1%). Increases, including
  margin top-ups, go through ``PositionRouter.createIncreasePosition`` requests that a position
  keeper (``keeper.devnet.position_keeper``) executes a block later.
- ``direct`` (forks that allow direct increases): leverage stays on, the margin fee is 0.1% at all
  times and anyone may call ``Vault.liquidatePosition``.

Parameters are GMX v1's production ones where they matter to a keeper: 50x maximum leverage, $5
liquidation fee, 0.1% margin fee, 1-hour funding interval with factor 100, a 0.3% deposit fee on
long collateral top-ups, PositionRouter delays (0 blocks for keepers, 180 s public, 30 min expiry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer

USD30 = 10**30
GATED, DIRECT = "gated", "direct"
MODES = (GATED, DIRECT)

# GMX v1's error strings, indexed by the Vault's error codes (``Vault._validate(condition, code)``):
# the Vault reverts with ``errors[code]``, so without them every revert would be an empty string.
VAULT_ERRORS = (
    "Vault: zero error", "Vault: already initialized", "Vault: invalid _maxLeverage",
    "Vault: invalid _taxBasisPoints", "Vault: invalid _stableTaxBasisPoints",
    "Vault: invalid _mintBurnFeeBasisPoints", "Vault: invalid _swapFeeBasisPoints",
    "Vault: invalid _stableSwapFeeBasisPoints", "Vault: invalid _marginFeeBasisPoints",
    "Vault: invalid _liquidationFeeUsd", "Vault: invalid _fundingInterval", "Vault: invalid _fundingRateFactor",
    "Vault: invalid _stableFundingRateFactor", "Vault: token not whitelisted", "Vault: _token not whitelisted",
    "Vault: invalid tokenAmount", "Vault: _token not whitelisted", "Vault: invalid tokenAmount",
    "Vault: invalid usdgAmount", "Vault: _token not whitelisted", "Vault: invalid usdgAmount",
    "Vault: invalid redemptionAmount", "Vault: invalid amountOut", "Vault: swaps not enabled",
    "Vault: _tokenIn not whitelisted", "Vault: _tokenOut not whitelisted", "Vault: invalid tokens",
    "Vault: invalid amountIn", "Vault: leverage not enabled", "Vault: insufficient collateral for fees",
    "Vault: invalid position.size", "Vault: empty position", "Vault: position size exceeded",
    "Vault: position collateral exceeded", "Vault: invalid liquidator", "Vault: empty position",
    "Vault: position cannot be liquidated", "Vault: invalid position", "Vault: invalid _averagePrice",
    "Vault: collateral should be withdrawn", "Vault: _size must be more than _collateral",
    "Vault: invalid msg.sender", "Vault: mismatched tokens", "Vault: _collateralToken not whitelisted",
    "Vault: _collateralToken must not be a stableToken", "Vault: _collateralToken not whitelisted",
    "Vault: _collateralToken must be a stableToken", "Vault: _indexToken must not be a stableToken",
    "Vault: _indexToken not shortable", "Vault: invalid increase", "Vault: reserve exceeds pool",
    "Vault: max USDG exceeded", "Vault: reserve exceeds pool", "Vault: forbidden", "Vault: forbidden",
    "Vault: maxGasPrice exceeded",
)


@dataclass(frozen=True)
class GmxParams:
    liquidation_fee_usd: int = 5 * USD30
    margin_fee_bps: int = 10  # inside executions (and always in direct mode)
    max_margin_fee_bps: int = 500  # at rest in gated mode (Timelock.maxMarginFeeBasisPoints)
    funding_interval: int = 3600
    funding_rate_factor: int = 100
    stable_funding_rate_factor: int = 100
    deposit_fee_bps: int = 30
    min_execution_fee: int = 10**14  # 0.0001 ETH, as on Arbitrum
    min_block_delay_keeper: int = 0
    min_time_delay_public: int = 180
    max_time_delay: int = 30 * 60
    min_profit_bps: int = 75
    min_profit_time: int = 0


# symbol -> (is_stable, is_shortable)
TOKEN_CONFIG = {"WETH": (False, True), "WBTC": (False, True), "USDC": (True, False)}


def deploy_gmx(d: Deployer, tokens: dict[str, dict[str, Any]], *, admin: str, lp: str, position_keeper: str,
               liquidator: str, pool_liquidity: dict[str, int], mode: str = GATED,
               params: GmxParams = GmxParams()) -> dict[str, Any]:
    """``tokens``: symbol -> {address, decimals, feed}; WETH must wrap ether (``TestWETH``). Longs
    take WETH/WBTC as collateral, shorts USDC (GMX v1: a short's collateral is a stable token)."""
    if mode not in MODES:
        raise ValueError(f"unknown GMX mode {mode!r} (known: {', '.join(MODES)})")
    g = C.gmx

    def send(fn: ContractFunction) -> TxReceipt:
        return d.send(fn, sender=admin)

    weth = tokens["WETH"]["address"]
    vault = d.deploy(g("Vault"), sender=admin)
    usdg = d.deploy(g("USDG"), vault.address, sender=admin)
    router = d.deploy(g("Router"), vault.address, usdg.address, weth, sender=admin)
    feed = d.deploy(g("VaultPriceFeed"), sender=admin)
    # Chainlink only: one round (no lookback over earlier rounds), no AMM or fast-price feed.
    send(feed.functions.setPriceSampleSpace(1))
    send(feed.functions.setIsAmmEnabled(False))
    send(feed.functions.setIsSecondaryPriceEnabled(False))
    for sym, (is_stable, _short) in TOKEN_CONFIG.items():
        t = tokens[sym]
        send(feed.functions.setTokenConfig(t["address"], t["feed"], 8, is_stable))
    send(vault.functions.initialize(router.address, usdg.address, feed.address, params.liquidation_fee_usd,
                                    params.funding_rate_factor, params.stable_funding_rate_factor))
    utils = d.deploy(g("VaultUtils"), vault.address, sender=admin)
    send(vault.functions.setVaultUtils(utils.address))
    errors = d.deploy(g("VaultErrorController"), sender=admin)
    send(vault.functions.setErrorController(errors.address))
    send(errors.functions.setErrors(vault.address, list(VAULT_ERRORS)))
    send(vault.functions.setFundingRate(params.funding_interval, params.funding_rate_factor,
                                        params.stable_funding_rate_factor))
    at_rest_fee = params.max_margin_fee_bps if mode == GATED else params.margin_fee_bps
    send(vault.functions.setFees(50, 5, 25, 30, 1, at_rest_fee, params.liquidation_fee_usd, params.min_profit_time,
                                 False))
    for sym, (is_stable, is_shortable) in TOKEN_CONFIG.items():
        t = tokens[sym]
        send(vault.functions.setTokenConfig(t["address"], t["decimals"], 10_000, params.min_profit_bps, 0, is_stable,
                                            is_shortable))

    shorts = d.deploy(g("ShortsTracker"), vault.address, sender=admin)
    send(shorts.functions.setIsGlobalShortDataReady(True))
    utils_lib = d.deploy(g("PositionUtils"), sender=admin)
    libs = {"PositionUtils": utils_lib.address}
    position_router = d.deploy(g("PositionRouter"), vault.address, router.address, weth, shorts.address,
                               params.deposit_fee_bps, params.min_execution_fee, libraries=libs, sender=admin)
    order_book = d.deploy(g("OrderBook"), sender=admin)
    send(order_book.functions.initialize(router.address, vault.address, weth, usdg.address, params.min_execution_fee,
                                         10 * USD30))
    manager = d.deploy(g("PositionManager"), vault.address, router.address, shorts.address, weth,
                       params.deposit_fee_bps, order_book.address, libraries=libs, sender=admin)
    send(position_router.functions.setPositionKeeper(position_keeper, True))
    send(position_router.functions.setDelayValues(params.min_block_delay_keeper, params.min_time_delay_public,
                                                  params.max_time_delay))
    send(manager.functions.setLiquidator(liquidator, True))
    for plugin in (position_router, manager):
        send(router.functions.addPlugin(plugin.address))
        send(shorts.functions.setHandler(plugin.address, True))

    max_fee = params.max_margin_fee_bps if mode == GATED else params.margin_fee_bps
    timelock = d.deploy(g("Timelock"), admin, 0, admin, admin, "0x" + "00" * 20, "0x" + "00" * 20,
                        "0x" + "00" * 20, 0, params.margin_fee_bps, max_fee, sender=admin)
    for handler in (position_router, manager):
        send(timelock.functions.setContractHandler(handler.address, True))
    if mode == GATED:
        send(timelock.functions.setShouldToggleIsLeverageEnabled(True))
        send(vault.functions.setIsLeverageEnabled(False))
        send(vault.functions.setInPrivateLiquidationMode(True))
        send(vault.functions.setLiquidator(manager.address, True))
    send(vault.functions.setGov(timelock.address))

    # Pool liquidity the way GMX's own UI adds it: GlpManager.addLiquidity pulls the tokens into the
    # Vault and buys USDG in one transaction. (A transfer to the Vault and a directPoolDeposit in two
    # transactions would leave loose tokens that the next caller of the Vault is credited with.)
    glp = d.deploy(g("GLP"), sender=admin)
    glp_manager = d.deploy(g("GlpManager"), vault.address, usdg.address, glp.address, shorts.address, 0, sender=admin)
    send(glp.functions.setMinter(glp_manager.address, True))
    erc20 = C.ours("TestERC20")
    for sym, amount in pool_liquidity.items():
        token = d.at(tokens[sym]["address"], erc20)
        d.send(token.functions.mint(lp, amount), sender=lp)
        d.send(token.functions.approve(glp_manager.address, amount), sender=lp)
        d.send(glp_manager.functions.addLiquidity(token.address, amount, 0, 0), sender=lp)

    return {
        "kind": "gmx_v1",
        "mode": mode,
        "vault": vault.address,
        "router": router.address,
        "position_router": position_router.address,
        "position_manager": manager.address,
        "timelock": timelock.address,
        "glp_manager": glp_manager.address,
        "vault_price_feed": feed.address,
        "vault_utils": utils.address,
        "shorts_tracker": shorts.address,
        "order_book": order_book.address,
        "usdg": usdg.address,
        "position_keeper": position_keeper,
        "liquidator": liquidator,
        "max_leverage_bps": vault.functions.maxLeverage().call(),
        "liquidation_fee_usd": vault.functions.liquidationFeeUsd().call(),
        "margin_fee_bps": params.margin_fee_bps,
        "deposit_fee_bps": params.deposit_fee_bps,
        "min_execution_fee": params.min_execution_fee,
        "markets": {
            "ETH-long": {"collateral_token": tokens["WETH"]["address"], "index_token": tokens["WETH"]["address"],
                         "is_long": True},
            "ETH-short": {"collateral_token": tokens["USDC"]["address"], "index_token": tokens["WETH"]["address"],
                          "is_long": False},
            "BTC-long": {"collateral_token": tokens["WBTC"]["address"], "index_token": tokens["WBTC"]["address"],
                         "is_long": True},
            "BTC-short": {"collateral_token": tokens["USDC"]["address"], "index_token": tokens["WBTC"]["address"],
                          "is_long": False},
        },
    }
