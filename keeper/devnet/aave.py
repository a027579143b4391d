"""Deploy the real Aave v3 on a devnet, in one of two versions:

- ``3.7`` (the default): aave-dao/aave-v3-origin, ``POOL_REVISION`` 11, compiled at set-up into
  ``build/aave-v3-origin`` (``keeper.devnet.aave_origin``);
- ``3.0``: the ``@aave/core-v3`` 1.19.3 hardhat artifacts (v3.0.2, ``POOL_REVISION`` 1), below.

Both get the same reserves, prices, risk parameters and e-mode category, and return the same keys
for the deployment file (plus ``version`` and ``revision``).

v3.0 order (DESIGN.md): PoolAddressesProvider -> setACLAdmin -> ACLManager -> setACLManager,
addPoolAdmin -> logic libraries (FlashLoanLogic links BorrowLogic) -> Pool implementation ->
setPoolImpl (the provider makes the proxy) -> PoolConfigurator -> setPoolConfiguratorImpl ->
AaveOracle over Chainlink feeds -> AaveProtocolDataProvider -> DefaultReserveInterestRateStrategy ->
AToken / StableDebtToken / VariableDebtToken implementations -> initReserves ->
configureReserveAsCollateral, setReserveBorrowing, setReserveFlashLoaning -> setEModeCategory, setAssetEModeCategory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.contract import Contract

from keeper.chain import contracts as C
from keeper.devnet import AAVE_VERSIONS, DEFAULT_AAVE_VERSION
from keeper.devnet.deployer import Deployer

RAY = 10**27
ZERO = "0x0000000000000000000000000000000000000000"
LOGIC_LIBRARIES = ("BorrowLogic", "BridgeLogic", "EModeLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic")
MARKET_ID = "Keeper Devnet"
# A mainnet-like curve on both versions: 80% optimal usage, 0% base, 4% slope 1, 75% slope 2.
RATE_OPTIMAL_BPS, RATE_BASE_BPS, RATE_SLOPE1_BPS, RATE_SLOPE2_BPS = 8000, 0, 400, 7500


@dataclass(frozen=True)
class ReserveSpec:
    symbol: str
    asset: str
    decimals: int
    feed: str
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int  # 10500 = 5% bonus
    borrowable: bool


@dataclass(frozen=True)
class EModeSpec:
    """An e-mode category whose assets are collateral and borrowable in it (not isolated)."""

    category: int
    label: str
    ltv_bps: int
    liquidation_threshold_bps: int
    liquidation_bonus_bps: int
    assets: tuple[str, ...]  # symbols


def deploy_aave(d: Deployer, reserves: list[ReserveSpec], admin: str, treasury: str, *,
                version: str = DEFAULT_AAVE_VERSION, emodes: tuple[EModeSpec, ...] = ()) -> dict[str, Any]:
    """Deploy Aave v3 ``version`` ("3.7" or "3.0"); returns the addresses for the deployment file."""
    if version == "3.0":
        return deploy_aave_v30(d, reserves, admin, treasury, emodes)
    if version == "3.7":
        from keeper.devnet.aave_origin import deploy_aave_v37

        return deploy_aave_v37(d, reserves, admin, treasury, emodes)
    raise ValueError(f"unknown Aave version {version!r}; known: {', '.join(AAVE_VERSIONS)}")


def deploy_aave_v30(d: Deployer, reserves: list[ReserveSpec], admin: str, treasury: str,
                    emodes: tuple[EModeSpec, ...] = ()) -> dict[str, Any]:
    provider = d.deploy(C.aave("PoolAddressesProvider"), MARKET_ID, admin)
    # setACLAdmin must come before ACLManager's constructor (else it reverts "75").
    d.send(provider.functions.setACLAdmin(admin), sender=admin)
    acl = d.deploy(C.aave("ACLManager"), provider.address)
    d.send(provider.functions.setACLManager(acl.address), sender=admin)
    d.send(acl.functions.addPoolAdmin(admin), sender=admin)

    libs = {name: d.deploy(C.aave(name)).address for name in LOGIC_LIBRARIES}
    libs["FlashLoanLogic"] = d.deploy(C.aave("FlashLoanLogic"), libraries={"BorrowLogic": libs["BorrowLogic"]}).address
    pool_impl = d.deploy(C.aave("Pool"), provider.address, libraries=libs)
    d.send(provider.functions.setPoolImpl(pool_impl.address), sender=admin)
    pool = d.at(provider.functions.getPool().call(), C.aave("Pool"))

    configurator_logic = d.deploy(C.aave("ConfiguratorLogic")).address
    configurator_impl = d.deploy(C.aave("PoolConfigurator"), libraries={"ConfiguratorLogic": configurator_logic})
    d.send(provider.functions.setPoolConfiguratorImpl(configurator_impl.address), sender=admin)
    configurator = d.at(provider.functions.getPoolConfigurator().call(), C.aave("PoolConfigurator"))

    # Base currency USD with 8 decimals: base currency address 0, unit 1e8 (as Aave v3 mainnet).
    oracle = d.deploy(C.aave("AaveOracle"), provider.address, [r.asset for r in reserves],
                      [r.feed for r in reserves], ZERO, ZERO, 10**8)
    d.send(provider.functions.setPriceOracle(oracle.address), sender=admin)
    data_provider = d.deploy(C.aave("AaveProtocolDataProvider"), provider.address)
    d.send(provider.functions.setPoolDataProvider(data_provider.address), sender=admin)

    # v3.0's strategy takes the curve in rays (and stable-rate parameters, unused here).
    bps = RAY // 10_000
    strategy = d.deploy(
        C.aave("DefaultReserveInterestRateStrategy"), provider.address,
        RATE_OPTIMAL_BPS * bps, RATE_BASE_BPS * bps, RATE_SLOPE1_BPS * bps, RATE_SLOPE2_BPS * bps, 2 * RAY // 100,
        75 * RAY // 100, 2 * RAY // 100, 5 * RAY // 100, 20 * RAY // 100,
    )
    a_impl = d.deploy(C.aave("AToken"), pool.address)
    s_impl = d.deploy(C.aave("StableDebtToken"), pool.address)
    v_impl = d.deploy(C.aave("VariableDebtToken"), pool.address)
    inputs = [
        (a_impl.address, s_impl.address, v_impl.address, r.decimals, strategy.address, r.asset, treasury, ZERO,
         f"Aave Devnet {r.symbol}", f"a{r.symbol}", f"Aave Devnet Variable Debt {r.symbol}",
         f"variableDebt{r.symbol}", f"Aave Devnet Stable Debt {r.symbol}", f"stableDebt{r.symbol}", b"")
        for r in reserves
    ]
    d.send(configurator.functions.initReserves(inputs), sender=admin)
    configure_reserves(d, configurator, reserves, admin)
    by_symbol = {r.symbol: r for r in reserves}
    for e in emodes:
        # v3.0: a category has an optional price source (0: none) and each asset belongs to at most
        # one category, which makes it collateral and borrowable there.
        d.send(configurator.functions.setEModeCategory(e.category, e.ltv_bps, e.liquidation_threshold_bps,
                                                       e.liquidation_bonus_bps, ZERO, e.label), sender=admin)
        for sym in e.assets:
            d.send(configurator.functions.setAssetEModeCategory(by_symbol[sym].asset, e.category), sender=admin)
    return describe(version="3.0", revision=pool.functions.POOL_REVISION().call(), provider=provider, acl=acl,
                    pool=pool, configurator=configurator, oracle=oracle, data_provider=data_provider,
                    strategy=strategy, reserves=reserves, emodes=emodes)


def configure_reserves(d: Deployer, configurator: Contract, reserves: list[ReserveSpec], admin: str) -> None:
    for r in reserves:
        d.send(configurator.functions.configureReserveAsCollateral(
            r.asset, r.ltv_bps, r.liquidation_threshold_bps, r.liquidation_bonus_bps), sender=admin)
        if r.borrowable:
            d.send(configurator.functions.setReserveBorrowing(r.asset, True), sender=admin)
        # As on Aave's live markets: the reserve lends by flashLoan/flashLoanSimple (the vault's
        # deleverage may borrow from it for one transaction).
        d.send(configurator.functions.setReserveFlashLoaning(r.asset, True), sender=admin)


def describe(*, version: str, revision: int, provider: Contract, acl: Contract, pool: Contract,
             configurator: Contract, oracle: Contract, data_provider: Contract, strategy: Contract,
             reserves: list[ReserveSpec], emodes: tuple[EModeSpec, ...]) -> dict[str, Any]:
    """The deployment file's ``aave_v3`` section (the same keys on every version)."""
    a_tokens, variable_debt = {}, {}
    for r in reserves:
        a_token, _stable, variable = data_provider.functions.getReserveTokensAddresses(r.asset).call()
        a_tokens[r.symbol] = a_token
        variable_debt[r.symbol] = variable
    return {
        "version": version,
        "revision": revision,
        "addresses_provider": provider.address,
        "acl_manager": acl.address,
        "pool": pool.address,
        "pool_configurator": configurator.address,
        "oracle": oracle.address,
        "data_provider": data_provider.address,
        "interest_rate_strategy": strategy.address,
        "a_tokens": a_tokens,
        "variable_debt_tokens": variable_debt,
        "reserves": {r.symbol: {"asset": Web3.to_checksum_address(r.asset), "ltv_bps": r.ltv_bps,
                                "liquidation_threshold_bps": r.liquidation_threshold_bps,
                                "liquidation_bonus_bps": r.liquidation_bonus_bps} for r in reserves},
        "emode_categories": {str(e.category): {"label": e.label, "ltv_bps": e.ltv_bps,
                                               "liquidation_threshold_bps": e.liquidation_threshold_bps,
                                               "liquidation_bonus_bps": e.liquidation_bonus_bps,
                                               "assets": list(e.assets)} for e in emodes},
    }
