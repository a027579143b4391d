"""The KeeperVault world of the tests in this directory: every test runs on both Aave versions
(module-scoped ``aave_version``: v3.0.2 and v3.7, each on its own anvil), with one fresh vault, its
caps, allow-list, reserve and positions (``env``) built once per module on top of that devnet; every
test reverts to it (``snapshot``)."""

from __future__ import annotations

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from tests.conftest import evm_revert, evm_snapshot
from tests.contracts.gmx_env import Gmx
from tests.contracts.vault_env import (
    AAVE,
    CAPS,
    E6,
    E8,
    E18,
    FLOOR_AAVE,
    FLOOR_MORPHO,
    FLOOR_PERP,
    KV,
    MAX,
    MORPHO,
    ZERO,
    Env,
    asset_key,
    b32,
)


# The session fixtures, per Aave version: these module-scoped overrides make ``snapshot`` (and
# everything else here) use the chain of the version under test.
@pytest.fixture(scope="module", params=["3.0", "3.7"], ids=["aave3.0", "aave3.7"])
def aave_version(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def w3(request, aave_version) -> Web3:
    return request.getfixturevalue({"3.0": "w3_v30", "3.7": "w3_v37"}[aave_version])


@pytest.fixture(scope="module")
def devnet(request, aave_version) -> dict:
    return request.getfixturevalue({"3.0": "devnet_v30", "3.7": "devnet_v37"}[aave_version])


@pytest.fixture(scope="module")
def accounts(w3) -> list[str]:
    return list(w3.eth.accounts)


@pytest.fixture(scope="module")
def deployer(w3, accounts) -> Deployer:
    return Deployer(w3, accounts[0])



@pytest.fixture(scope="module")
def env(w3, devnet, deployer, accounts):
    snap = evm_snapshot(w3)
    e = Env(w3=w3, d=deployer, net=devnet, owner=accounts[7], keeper=accounts[8], stranger=accounts[9],
            lp=accounts[2])
    erc20 = C.ours("TestERC20")
    e.tok = {s: deployer.at(devnet["tokens"][s]["address"], erc20) for s in ("WETH", "WBTC", "USDC")}
    e.version = devnet["aave_v3"]["version"]
    # aToken transfers move scaled units: with WETH's liquidity index above 1 (the devnet borrows
    # WETH), an owner-held withdrawal (aTokens pulled, then redeemed) can bring 1 wei less than
    # asked on v3.0 (half-up rounding) or 1 wei more on v3.7 (since v3.5 the recipient's credit is
    # rounded up). The vault counts what arrives.
    e.rounding = 1
    e.pool = deployer.at(devnet["aave_v3"]["pool"], C.aave_for(e.version, "Pool"))
    e.a_weth = deployer.at(devnet["aave_v3"]["a_tokens"]["WETH"], erc20)
    e.morpho = deployer.at(devnet["morpho_blue"]["morpho"], C.third_party("Morpho"))
    m = devnet["morpho_blue"]["markets"]["WETH/USDC"]
    e.mid, e.params = b32(m["id"]), (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], m["lltv"])
    e.irm = deployer.at(m["irm"], C.third_party("IrmMock"))
    e.oracle = deployer.at(m["oracle"], C.ours("MorphoChainlinkOracle"))
    e.gmx = Gmx(w3, devnet, deployer)
    assert e.gmx.gated
    e.perp, e.perp_name = e.gmx.vault, "ETH-long"
    e.perp_params = e.gmx.params(e.perp_name)
    e.fee = e.gmx.fee  # the PositionRouter's minimum execution fee

    owner, weth, usdc = e.owner, e.tok["WETH"], e.tok["USDC"]
    for sym, amount in (("WETH", 100 * E18), ("USDC", 100_000 * E6), ("WBTC", 10 * E8)):
        e.send(e.tok[sym].functions.mint(owner, amount), owner)
    # Own liquidity, so borrowing does not depend on what the devnet seeded.
    e.send(usdc.functions.mint(e.lp, 2_000_000 * E6), e.lp)
    e.send(usdc.functions.approve(e.pool.address, MAX), e.lp)
    e.send(e.pool.functions.supply(usdc.address, 1_000_000 * E6, e.lp, 0), e.lp)
    e.send(usdc.functions.approve(e.morpho.address, MAX), e.lp)
    e.send(e.morpho.functions.supply(e.params, 1_000_000 * E6, 0, e.lp, b""), e.lp)

    v = e.vault = deployer.deploy(KV, owner, e.keeper)
    for sym, (per_call, per_window) in CAPS.items():
        e.send(v.functions.setCap(e.tok[sym].address, per_call, per_window), owner)
        e.send(v.functions.setReleaseCap(e.tok[sym].address, per_window), owner)  # releases bound by the caps alone
    for sym in ("WETH", "USDC"):  # WBTC deliberately not allow-listed
        e.send(v.functions.setMarket(AAVE, e.pool.address, asset_key(e.tok[sym].address), True, FLOOR_AAVE), owner)
    e.send(v.functions.setMarket(MORPHO, e.morpho.address, e.mid, True, FLOOR_MORPHO), owner)
    e.send(v.functions.setPerpMarket(e.perp.address, *e.perp_params, True, FLOOR_PERP), owner)
    e.perp_market = Web3.keccak(w3.codec.encode(["address", "address", "bool"], list(e.perp_params)))
    assert v.functions.perpMarkets(e.perp_market).call()[0] == e.perp_params[0]
    # Gated GMX top-ups are PositionRouter requests: a route, ether for execution fees, their caps.
    e.send(v.functions.setPerpRoute(e.perp.address, e.gmx.position_router.address, 2 * e.fee), owner)
    e.send(v.functions.setCap(ZERO, 2 * e.fee, 20 * e.fee), owner)
    deployer.send_value(v.address, 50 * e.fee, sender=owner)

    # Reserve: 40 WETH and 30,000 USDC deposited by the owner.
    for sym, amount in (("WETH", 40 * E18), ("USDC", 30_000 * E6)):
        e.send(e.tok[sym].functions.approve(v.address, amount), owner)
        e.send(v.functions.deposit(e.tok[sym].address, amount), owner)
    # Vault-held positions, opened by the owner through execute.
    e.exec(weth, "approve", [e.pool.address, 10 * E18])
    e.exec(e.pool, "supply", [weth.address, 10 * E18, v.address, 0])  # HF 10*2000*0.825/10000 = 1.65
    e.exec(e.pool, "borrow", [usdc.address, 10_000 * E6, 2, 0, v.address])
    e.exec(weth, "approve", [e.morpho.address, 5 * E18])
    e.exec(e.morpho, "supplyCollateral", [e.params, 5 * E18, v.address, b""])  # 5*2000*0.86/5000 = 1.72
    e.exec(e.morpho, "borrow", [e.params, 5_000 * E6, 0, v.address, v.address])
    # ~10x ETH long through the PositionRouter and the position keeper: health ~ 50x/10x
    e.gmx.open(e.perp_name, 2 * E18, 20_000, v.address, kv=v, owner=owner, mint=False)
    # Owner-held twins, with the vault authorised on them.
    e.send(weth.functions.approve(e.pool.address, MAX), owner)
    e.send(e.pool.functions.supply(weth.address, 10 * E18, owner, 0), owner)
    e.send(e.pool.functions.borrow(usdc.address, 10_000 * E6, 2, 0, owner), owner)
    e.send(e.a_weth.functions.approve(v.address, MAX), owner)
    e.send(weth.functions.approve(e.morpho.address, MAX), owner)
    e.send(e.morpho.functions.supplyCollateral(e.params, 5 * E18, owner, b""), owner)
    e.send(e.morpho.functions.borrow(e.params, 5_000 * E6, 0, owner, owner), owner)
    e.send(e.morpho.functions.setAuthorization(v.address, True), owner)
    e.gmx.open(e.perp_name, 3 * E18, 20_000, owner, mint=False)  # ~6.7x: health ~ 15 (floor 5)
    e.send(e.perp.functions.addRouter(v.address), owner)  # GMX: the vault may decrease it
    yield e
    evm_revert(w3, snap)
