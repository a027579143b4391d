"""The devnet deploys Aave v3.7 (aave-v3-origin, pool revision 11) by default and v3.0.2
(``@aave/core-v3``, revision 1) with ``--aave 3.0``: the same reserves, prices, risk parameters and
e-mode category on both, the version and revision in the deployment file, and the same seeded
accounts, among them dave's e-mode position and erin's several-asset account."""

import json
import os
import subprocess
import sys

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.anvil import free_port
from tests.devnet.helpers import E18, aave, aave_pool, position

pytestmark = pytest.mark.chain

REVISION = {"3.0": 1, "3.7": 11}
EMODE_LT = 9300
SAME_KEYS = {"addresses_provider", "acl_manager", "pool", "pool_configurator", "oracle", "data_provider",
             "interest_rate_strategy", "a_tokens", "variable_debt_tokens", "reserves"}


def keeper(args, state, timeout=180):
    env = {**os.environ, "KEEPER__DEVNET__STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=state.parent)


@pytest.mark.parametrize("flags,version", [([], "3.7"), (["--aave", "3.0"], "3.0")], ids=["default", "aave3.0"])
def test_up_records_the_version_and_the_pools_revision(tmp_path, flags, version):
    state = tmp_path / "state"
    port = free_port()
    proc = keeper(["devnet", "up", "--detach", "--port", str(port), *flags], state)
    try:
        assert proc.returncode == 0, proc.stderr
        assert f"Aave v{version} pool revision {REVISION[version]}" in proc.stdout
        dep = json.loads((state / "devnet.json").read_text())
        aave_v3 = dep["aave_v3"]
        assert aave_v3["version"] == version and aave_v3["revision"] == REVISION[version]
        assert set(aave_v3) >= SAME_KEYS
        assert dep["seconds_to_deploy"] < 20
        w3 = Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}"))
        # The pool's own answer (getRevision() is internal; POOL_REVISION is its public constant).
        assert aave_pool(w3, dep).functions.POOL_REVISION().call() == REVISION[version]
        assert {p["id"] for p in dep["positions"]} >= {"dave-aave-emode", "erin-aave-multi"}
    finally:
        keeper(["devnet", "down"], state)


def test_an_unknown_version_is_refused(tmp_path):
    proc = keeper(["devnet", "up", "--aave", "3.5"], tmp_path / "state", timeout=60)
    assert proc.returncode == 2 and "invalid choice: '3.5'" in proc.stderr


def test_both_versions_get_the_same_market(devnet, devnet_v30, w3, w3_v30):
    a, b = devnet["aave_v3"], devnet_v30["aave_v3"]
    assert (a["version"], b["version"]) == ("3.7", "3.0")
    assert set(a) == set(b)
    assert a["reserves"] == b["reserves"] and a["emode_categories"] == b["emode_categories"]
    assert devnet["roles"] == devnet_v30["roles"]
    assert [p["id"] for p in devnet["positions"]] == [p["id"] for p in devnet_v30["positions"]]
    for dep, chain in ((devnet, w3), (devnet_v30, w3_v30)):
        data = chain.eth.contract(address=dep["aave_v3"]["data_provider"],
                                  abi=aave(dep, "AaveProtocolDataProvider").abi)
        oracle = chain.eth.contract(address=dep["aave_v3"]["oracle"], abi=aave(dep, "AaveOracle").abi)
        got = {}
        for sym, r in dep["aave_v3"]["reserves"].items():
            cfg = data.functions.getReserveConfigurationData(r["asset"]).call()
            # decimals, LTV, LT, bonus, reserve factor, collateral, borrowing, (stable), active, frozen
            got[sym] = (cfg[0], cfg[1], cfg[2], cfg[3], cfg[4], cfg[5], cfg[6], cfg[8], cfg[9],
                        oracle.functions.getAssetPrice(r["asset"]).call())
        assert got == {"WETH": (18, 8000, 8250, 10500, 0, True, True, True, False, 2_000 * 10**8),
                       "WBTC": (8, 7000, 7500, 10650, 0, True, False, True, False, 30_000 * 10**8),
                       "USDC": (6, 7700, 8000, 10450, 0, True, True, True, False, 1 * 10**8)}, dep["aave_v3"]["version"]


def emode_category(net) -> tuple[int, int, int, str, set[str]]:
    """(LTV, LT, bonus, label, collateral assets) of category 1, as each version stores it."""
    pool = aave_pool(net.w3, net.dep)
    tokens = {sym: t["address"] for sym, t in net.dep["tokens"].items()}
    if net.version == "3.0":
        ltv, lt, bonus, _source, label = pool.functions.getEModeCategoryData(1).call()
        data = net.w3.eth.contract(address=net.dep["aave_v3"]["data_provider"],
                                   abi=aave(net.dep, "AaveProtocolDataProvider").abi)
        assets = {s for s, a in tokens.items() if data.functions.getReserveEModeCategory(a).call() == 1}
        return ltv, lt, bonus, label, assets
    ltv, lt, bonus = pool.functions.getEModeCategoryCollateralConfig(1).call()
    collateral = pool.functions.getEModeCategoryCollateralBitmap(1).call()
    borrowable = pool.functions.getEModeCategoryBorrowableBitmap(1).call()
    ids = {s: pool.functions.getReserveData(a).call()[7] for s, a in tokens.items()}  # ReserveDataLegacy.id
    assert collateral == borrowable
    return ltv, lt, bonus, pool.functions.getEModeCategoryLabel(1).call(), {
        s for s, i in ids.items() if collateral >> i & 1}


def expected_health(net, account: str, block: int, emode_lt: int | None) -> float:
    """Aave's health factor from the account's balances and the oracle, with WETH at ``emode_lt``
    (e-mode) or at its reserve's own threshold. v3.0 floors the value-weighted average threshold to
    whole bps before applying it (v3.5+ applies each threshold to its own collateral)."""
    dep, w3 = net.dep, net.w3
    erc20 = C.ours("TestERC20").abi
    oracle = w3.eth.contract(address=dep["aave_v3"]["oracle"], abi=aave(dep, "AaveOracle").abi)
    total = weighted = debt = 0
    for sym, r in dep["aave_v3"]["reserves"].items():
        unit = 10 ** dep["tokens"][sym]["decimals"]
        price = oracle.functions.getAssetPrice(r["asset"]).call(block_identifier=block)
        coll = w3.eth.contract(address=dep["aave_v3"]["a_tokens"][sym], abi=erc20)
        owed = w3.eth.contract(address=dep["aave_v3"]["variable_debt_tokens"][sym], abi=erc20)
        lt = emode_lt if (sym == "WETH" and emode_lt) else r["liquidation_threshold_bps"]
        value = coll.functions.balanceOf(account).call(block_identifier=block) * price // unit
        total += value
        weighted += value * lt
        debt += owed.functions.balanceOf(account).call(block_identifier=block) * price // unit
    if net.version == "3.0":
        return total * (weighted // total) / 10_000 / debt
    return weighted / 10_000 / debt


def test_emode_category_and_the_emode_position(aave_net):
    w3, dep = aave_net.w3, aave_net.dep
    assert emode_category(aave_net) == (9000, 9300, 10100, "ETH correlated", {"WETH"})
    pos = position(dep, "dave-aave-emode")
    assert pos["holder"] == "vault" and pos["vault"] == pos["account"] == dep["keeper_vaults"]["dave"]["address"]
    assert pos["owner"] == dep["roles"]["dave"] == w3.eth.accounts[7]
    pool = aave_pool(w3, dep)
    account = pos["account"]
    assert pool.functions.getUserEMode(account).call() == 1
    block = w3.eth.block_number
    in_emode = pool.functions.getUserAccountData(account).call(block_identifier=block)[5] / E18
    assert in_emode == pytest.approx(expected_health(aave_net, account, block, EMODE_LT), rel=1e-6)
    assert in_emode == pytest.approx(1.36, abs=0.01)

    # The same balances without e-mode: the owner leaves it through his vault.
    vault = w3.eth.contract(address=account, abi=C.ours("KeeperVault").abi)
    data = pool.encode_abi("setUserEMode", [0])
    tx = vault.functions.execute(pool.address, 0, data).transact({"from": pos["owner"]})
    assert w3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert pool.functions.getUserEMode(account).call() == 0
    block = w3.eth.block_number
    plain = pool.functions.getUserAccountData(account).call(block_identifier=block)[5] / E18
    assert plain == pytest.approx(expected_health(aave_net, account, block, None), rel=1e-6)
    assert plain == pytest.approx(1.24, abs=0.01)
    assert in_emode - plain > 0.1


def test_the_multi_asset_account(aave_net):
    w3, dep = aave_net.w3, aave_net.dep
    pos = position(dep, "erin-aave-multi")
    assert pos["holder"] == "watch" and pos["vault"] is None
    assert pos["account"] == pos["owner"] == dep["roles"]["erin"] == w3.eth.accounts[8]
    pool = aave_pool(w3, dep)
    (bits,) = pool.functions.getUserConfiguration(pos["account"]).call()
    reserves = [Web3.to_checksum_address(a) for a in pool.functions.getReservesList().call()]
    symbol = {r["asset"]: sym for sym, r in dep["aave_v3"]["reserves"].items()}
    # Aave's user configuration: bit 2i = borrowing reserve i, bit 2i + 1 = using it as collateral.
    collateral = {symbol[a] for i, a in enumerate(reserves) if bits >> (2 * i + 1) & 1}
    borrowed = {symbol[a] for i, a in enumerate(reserves) if bits >> (2 * i) & 1}
    assert collateral == {"WETH", "WBTC", "USDC"} and borrowed == {"USDC", "WETH"}
    assert pool.functions.getUserEMode(pos["account"]).call() == 0
    block = w3.eth.block_number
    hf = pool.functions.getUserAccountData(pos["account"]).call(block_identifier=block)[5] / E18
    assert hf == pytest.approx(expected_health(aave_net, pos["account"], block, None), rel=1e-6)


def test_dave_and_erin_become_config_accounts(devnet, tmp_path):
    """dave's vault is a protected vault account, erin a watched-only one (as carol)."""
    from keeper.config import chain_from_deployment

    path = tmp_path / "devnet.json"
    path.write_text(json.dumps({**devnet, "rpc_url": "http://127.0.0.1:1"}))
    accounts = {a.label: a for a in chain_from_deployment(path).accounts}
    assert accounts["dave"].kind == "vault" and accounts["erin"].kind == "watch"
    assert accounts["carol"].kind == "watch" and accounts["alice"].kind == "vault" and accounts["bob"].kind == "owner"
