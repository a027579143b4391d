"""Deploy the real Aave v3 (``@aave/core-v3`` 1.19.3 hardhat artifacts) on a devnet.

Order (DESIGN.md): PoolAddressesProvider -> setACLAdmin -> ACLManager -> setACLManager,
addPoolAdmin -> logic libraries (FlashLoanLogic links BorrowLogic) -> Pool implementation ->
setPoolImpl (the provider makes the proxy) -> PoolConfigurator -> setPoolConfiguratorImpl ->
AaveOracle over Chainlink feeds -> AaveProtocolDataProvider -> DefaultReserveInterestRateStrategy ->
AToken / StableDebtToken / VariableDebtToken implementations -> initReserves ->
configureReserveAsCollateral, setReserveBorrowing.
"""

from __future__ import annotations

from dataclasses import dataclass

from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer

RAY = 10**27
ZERO = "0x0000000000000000000000000000000000000000"
LOGIC_LIBRARIES = ("BorrowLogic", "BridgeLogic", "EModeLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic")


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


def deploy_aave(d: Deployer, reserves: list[ReserveSpec], admin: str, treasury: str) -> dict:
    """Deploy Aave v3 with the given reserves; returns the addresses for the deployment file."""
    provider = d.deploy(C.aave("PoolAddressesProvider"), "Keeper Devnet", admin)
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

    # A mainnet-like curve: 80% optimal usage, 0% base, 4% slope 1, 75% slope 2 (rays).
    strategy = d.deploy(
        C.aave("DefaultReserveInterestRateStrategy"), provider.address,
        80 * RAY // 100, 0, 4 * RAY // 100, 75 * RAY // 100, 2 * RAY // 100, 75 * RAY // 100,
        2 * RAY // 100, 5 * RAY // 100, 20 * RAY // 100,
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
    for r in reserves:
        d.send(configurator.functions.configureReserveAsCollateral(
            r.asset, r.ltv_bps, r.liquidation_threshold_bps, r.liquidation_bonus_bps), sender=admin)
        if r.borrowable:
            d.send(configurator.functions.setReserveBorrowing(r.asset, True), sender=admin)

    a_tokens, variable_debt = {}, {}
    for r in reserves:
        a_token, _stable, variable = data_provider.functions.getReserveTokensAddresses(r.asset).call()
        a_tokens[r.symbol] = a_token
        variable_debt[r.symbol] = variable
    return {
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
    }
