"""On the devnet, with the real Aave v3 (v3.0 and v3.7: the ``aave_net`` tests run on both) and the
real Morpho Blue: a seeded position becomes liquidatable after a price drop and a third party's
liquidation succeeds; the same drop after a KeeperVault top-up leaves it healthy and the
liquidation reverts."""

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.errors import Reverted
from tests.devnet.helpers import (
    AAVE,
    E18,
    MORPHO,
    aave,
    aave_error,
    aave_pool,
    aave_revert_name,
    asset_key,
    gmx_vault,
    position,
    revert_name,
    set_price,
    token,
)

pytestmark = pytest.mark.usefixtures("snapshot")

MAX = 2**256 - 1


@pytest.fixture
def d(w3, devnet) -> Deployer:
    return Deployer(w3, devnet["roles"]["admin"])


def aave_hf(w3, devnet, account) -> int:
    return aave_pool(w3, devnet).functions.getUserAccountData(account).call()[5]


def fund_liquidator(w3, devnet, d, spender) -> str:
    liq = devnet["roles"]["liquidator"]
    usdc = token(w3, devnet, "USDC")
    d.send(usdc.functions.mint(liq, 1_000_000 * 10**6), sender=liq)
    d.send(usdc.functions.approve(spender, MAX), sender=liq)
    return liq


def aave_liquidate(w3, devnet, d, user) -> dict:
    pool = aave_pool(w3, devnet)
    liq = fund_liquidator(w3, devnet, d, pool.address)
    weth, usdc = token(w3, devnet, "WETH"), token(w3, devnet, "USDC")
    return d.send(pool.functions.liquidationCall(weth.address, usdc.address, user, 2_000 * 10**6, False), sender=liq)


def vault_of(w3, devnet, name):
    return w3.eth.contract(address=devnet["keeper_vaults"][name]["address"], abi=C.ours("KeeperVault").abi)


@pytest.mark.parametrize("pid", ["alice-aave", "bob-aave"])
def test_aave_price_drop_makes_position_liquidatable(aave_net, pid):
    w3, devnet = aave_net.w3, aave_net.dep
    d = Deployer(w3, devnet["roles"]["admin"])
    pos = position(devnet, pid)
    assert aave_hf(w3, devnet, pos["account"]) > E18
    set_price(w3, devnet, "ETH", 1_400)
    set_price(w3, devnet, "BTC", 21_000)
    assert aave_hf(w3, devnet, pos["account"]) < E18
    weth = token(w3, devnet, "WETH")
    before = weth.functions.balanceOf(devnet["roles"]["liquidator"]).call()
    aave_liquidate(w3, devnet, d, pos["account"])
    assert weth.functions.balanceOf(devnet["roles"]["liquidator"]).call() > before


@pytest.mark.parametrize("pid,vault_name,amount", [("alice-aave", "alice", 5 * E18), ("bob-aave", "bob", 3 * E18)])
def test_aave_keeper_top_up_prevents_liquidation(aave_net, pid, vault_name, amount):
    w3, devnet = aave_net.w3, aave_net.dep
    d = Deployer(w3, devnet["roles"]["admin"])
    pos = position(devnet, pid)
    vault = vault_of(w3, devnet, vault_name)
    weth = token(w3, devnet, "WETH")
    ref = (AAVE, devnet["aave_v3"]["pool"], asset_key(weth.address), pos["account"])
    hf0 = aave_hf(w3, devnet, pos["account"])
    d.send(vault.functions.topUp(ref, amount), sender=devnet["roles"]["keeper"])
    assert aave_hf(w3, devnet, pos["account"]) > hf0
    set_price(w3, devnet, "ETH", 1_400)
    set_price(w3, devnet, "BTC", 21_000)
    assert aave_hf(w3, devnet, pos["account"]) >= E18
    with pytest.raises(Reverted) as exc:
        aave_liquidate(w3, devnet, d, pos["account"])
    assert aave_revert_name(exc.value, devnet) == aave_error(devnet, "HEALTH_FACTOR_NOT_BELOW_THRESHOLD")


def morpho_params(devnet):
    m = devnet["morpho_blue"]["markets"]["WETH/USDC"]
    return (m["loan_token"], m["collateral_token"], m["oracle"], m["irm"], m["lltv"])


def morpho_liquidate(w3, devnet, d, borrower) -> dict:
    morpho = w3.eth.contract(address=devnet["morpho_blue"]["morpho"], abi=C.third_party("Morpho").abi)
    liq = fund_liquidator(w3, devnet, d, morpho.address)
    return d.send(morpho.functions.liquidate(morpho_params(devnet), borrower, E18, 0, b""), sender=liq)


@pytest.mark.parametrize("pid", ["alice-morpho", "bob-morpho"])
def test_morpho_price_drop_makes_position_liquidatable(w3, devnet, d, pid):
    pos = position(devnet, pid)
    with pytest.raises(Reverted) as exc:
        morpho_liquidate(w3, devnet, d, pos["account"])
    assert revert_name(exc.value) == "position is healthy"
    set_price(w3, devnet, "ETH", 1_500)
    weth = token(w3, devnet, "WETH")
    before = weth.functions.balanceOf(devnet["roles"]["liquidator"]).call()
    morpho_liquidate(w3, devnet, d, pos["account"])
    assert weth.functions.balanceOf(devnet["roles"]["liquidator"]).call() == before + E18


@pytest.mark.parametrize("pid,vault_name", [("alice-morpho", "alice"), ("bob-morpho", "bob")])
def test_morpho_keeper_top_up_prevents_liquidation(w3, devnet, d, pid, vault_name):
    pos = position(devnet, pid)
    vault = vault_of(w3, devnet, vault_name)
    ref = (MORPHO, devnet["morpho_blue"]["morpho"], bytes.fromhex(pos["market"][2:]), pos["account"])
    d.send(vault.functions.topUp(ref, 3 * E18), sender=devnet["roles"]["keeper"])
    set_price(w3, devnet, "ETH", 1_500)
    with pytest.raises(Reverted) as exc:
        morpho_liquidate(w3, devnet, d, pos["account"])
    assert revert_name(exc.value) == "position is healthy"
    assert vault.functions.health(ref).call() >= E18


def test_one_feed_moves_aave_morpho_and_perps(aave_net):
    """`keeper devnet price ETH ...` moves one feed; all three protocols read it."""
    w3, devnet = aave_net.w3, aave_net.dep
    weth = devnet["tokens"]["WETH"]["address"]
    oracle = w3.eth.contract(address=devnet["aave_v3"]["oracle"], abi=aave(devnet, "AaveOracle").abi)
    m = devnet["morpho_blue"]["markets"]["WETH/USDC"]
    morpho_oracle = w3.eth.contract(address=m["oracle"], abi=C.ours("MorphoChainlinkOracle").abi)
    perp = gmx_vault(w3, devnet)
    set_price(w3, devnet, "ETH", 1_234.5)
    assert oracle.functions.getAssetPrice(weth).call() == 1_234_5000_0000
    # 1 wei of WETH in USDC base units at Morpho's 1e36 scale: 1234.5 * 1e6 / 1e18 * 1e36 = 1.2345e27
    assert morpho_oracle.functions.price().call() == 12_345 * 10**23
    assert perp.functions.getMinPrice(weth).call() == 1_234_5 * 10**29
    assert Web3.is_checksum_address(devnet["multicall3"])
