"""Deploy Aave v3.7 (aave-dao/aave-v3-origin, ``POOL_REVISION`` 11) on a devnet, from the artifacts
``make setup`` compiles into ``build/aave-v3-origin`` (``keeper.chain.contracts.aave_origin``).

Order (../shared/protocols/README.md): PoolAddressesProvider(id, admin) -> setACLAdmin ->
ACLManager -> setACLManager -> addPoolAdmin; DefaultReserveInterestRateStrategyV2(provider) (one
strategy per pool, immutable in it; each reserve's curve is set through the configurator); the
logic libraries (FlashLoanLogic links BorrowLogic); AaveOracle -> setPriceOracle;
PoolInstance(provider, strategy), linked -> setPoolImpl; PoolConfiguratorInstance ->
setPoolConfiguratorImpl; AaveProtocolDataProvider (reads the pool in its constructor) ->
setPoolDataProvider; ATokenInstance(pool, rewards, treasury) and VariableDebtTokenInstance(pool,
rewards) implementations; initReserves with the 9-field input (no stable debt; the curve goes in
abi-encoded as ``interestRateData``); configureReserveAsCollateral, setReserveBorrowing, setReserveFlashLoaning; e-mode:
setEModeCategory(id, ltv, lt, bonus, label, isolated) with setAssetCollateralInEMode and
setAssetBorrowableInEMode (category bitmaps since v3.2).
"""

from __future__ import annotations

from typing import Any

from eth_abi.abi import encode

from keeper.chain import contracts as C
from keeper.devnet.aave import (
    MARKET_ID,
    RATE_BASE_BPS,
    RATE_OPTIMAL_BPS,
    RATE_SLOPE1_BPS,
    RATE_SLOPE2_BPS,
    ZERO,
    EModeSpec,
    ReserveSpec,
    configure_reserves,
    describe,
)
from keeper.devnet.deployer import Deployer

LOGIC_LIBRARIES = ("BorrowLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic")


def rate_data() -> bytes:
    """``abi.encode(InterestRateData(optimalUsageRatio, base, slope1, slope2))``, all in bps."""
    return encode(["(uint16,uint32,uint32,uint32)"],
                  [(RATE_OPTIMAL_BPS, RATE_BASE_BPS, RATE_SLOPE1_BPS, RATE_SLOPE2_BPS)])


def deploy_aave_v37(d: Deployer, reserves: list[ReserveSpec], admin: str, treasury: str,
                    emodes: tuple[EModeSpec, ...] = ()) -> dict[str, Any]:
    art = C.aave_origin
    provider = d.deploy(art("PoolAddressesProvider"), MARKET_ID, admin)
    d.send(provider.functions.setACLAdmin(admin), sender=admin)
    acl = d.deploy(art("ACLManager"), provider.address)
    d.send(provider.functions.setACLManager(acl.address), sender=admin)
    d.send(acl.functions.addPoolAdmin(admin), sender=admin)

    strategy = d.deploy(art("DefaultReserveInterestRateStrategyV2"), provider.address)
    libs = {name: d.deploy(art(name)).address for name in LOGIC_LIBRARIES}
    libs["FlashLoanLogic"] = d.deploy(art("FlashLoanLogic"), libraries={"BorrowLogic": libs["BorrowLogic"]}).address

    # Base currency USD with 8 decimals: base currency address 0, unit 1e8 (as Aave v3 mainnet).
    oracle = d.deploy(art("AaveOracle"), provider.address, [r.asset for r in reserves],
                      [r.feed for r in reserves], ZERO, ZERO, 10**8)
    d.send(provider.functions.setPriceOracle(oracle.address), sender=admin)

    pool_impl = d.deploy(art("PoolInstance"), provider.address, strategy.address, libraries=libs)
    d.send(provider.functions.setPoolImpl(pool_impl.address), sender=admin)
    pool = d.at(provider.functions.getPool().call(), art("PoolInstance"))

    configurator_impl = d.deploy(art("PoolConfiguratorInstance"))
    d.send(provider.functions.setPoolConfiguratorImpl(configurator_impl.address), sender=admin)
    configurator = d.at(provider.functions.getPoolConfigurator().call(), art("PoolConfiguratorInstance"))

    data_provider = d.deploy(art("AaveProtocolDataProvider"), provider.address)
    d.send(provider.functions.setPoolDataProvider(data_provider.address), sender=admin)

    a_impl = d.deploy(art("ATokenInstance"), pool.address, ZERO, treasury)
    v_impl = d.deploy(art("VariableDebtTokenInstance"), pool.address, ZERO)
    curve = rate_data()
    inputs = [
        (a_impl.address, v_impl.address, r.asset, f"Aave Devnet {r.symbol}", f"a{r.symbol}",
         f"Aave Devnet Variable Debt {r.symbol}", f"variableDebt{r.symbol}", b"", curve)
        for r in reserves
    ]
    d.send(configurator.functions.initReserves(inputs), sender=admin)
    configure_reserves(d, configurator, reserves, admin)
    by_symbol = {r.symbol: r for r in reserves}
    for e in emodes:
        # Since v3.2 a category lists its collateral and borrowable assets in two bitmaps (an asset
        # may be in several categories); since v3.7 a category may be isolated (here: not).
        d.send(configurator.functions.setEModeCategory(e.category, e.ltv_bps, e.liquidation_threshold_bps,
                                                       e.liquidation_bonus_bps, e.label, False), sender=admin)
        for sym in e.assets:
            asset = by_symbol[sym].asset
            d.send(configurator.functions.setAssetCollateralInEMode(asset, e.category, True), sender=admin)
            d.send(configurator.functions.setAssetBorrowableInEMode(asset, e.category, True), sender=admin)
    return describe(version="3.7", revision=pool.functions.POOL_REVISION().call(), provider=provider, acl=acl,
                    pool=pool, configurator=configurator, oracle=oracle, data_provider=data_provider,
                    strategy=strategy, reserves=reserves, emodes=emodes)
