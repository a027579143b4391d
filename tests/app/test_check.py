"""``keeper check-config`` on the devnet: beyond code at addresses, one full read as the daemon makes
it and each KeeperVault's own ``health(ref)`` for every position it may act on. Run through the CLI
entry point in this process (``keeper.cli.main``), against a config whose chain is the devnet's
deployment file (tests change that file to misconfigure a chain)."""

from __future__ import annotations

import copy
import json
import re

import pytest

from keeper.chain import contracts as C
from keeper.cli import main
from keeper.devnet.deployer import Deployer
from tests.daemon.helpers import KEEPER_KEY
from tests.devnet.helpers import AAVE, E18, MORPHO, asset_key

pytestmark = pytest.mark.chain


def names(dep: dict, holders: tuple[str, ...] = ("vault", "owner")) -> set[str]:
    """The deployment's positions held so, as check-config names them: their short names, as `status`
    shows them (the position id without its descriptive suffix: ``dave-aave-emode`` is ``dave-aave``)."""
    return {re.sub(r"-(unprotected|emode|multi|noreserve|preliq)$", "", p["id"]) for p in dep["positions"]
            if p["holder"] in holders}


def read_line(dep: dict) -> str:
    return f"devnet: read of {len({p['account'] for p in dep['positions']})} account(s) at block "


def check_config(tmp_path, anvil, dep: dict, capsys, monkeypatch) -> tuple[int, list[str]]:
    """``keeper check-config`` on ``dep`` (a deployment dict) with the devnet's keeper key configured."""
    (tmp_path / "devnet.json").write_text(json.dumps({**dep, "rpc_url": anvil.url}))
    cfg = tmp_path / "config.toml"
    cfg.write_text('[keeper]\nkey_env = "KEEPER_TEST_KEY"\n\n'
                   f'[chains.devnet]\ndeployment = "{tmp_path / "devnet.json"}"\n')
    monkeypatch.setenv("KEEPER_TEST_KEY", KEEPER_KEY)
    capsys.readouterr()
    code = main(["--config", str(cfg), "check-config"])
    return code, capsys.readouterr().out.splitlines()


def health_lines(lines: list[str]) -> dict[str, str]:
    """position name -> its whole 'vault health of' line."""
    out = {}
    for ln in lines:
        if " devnet: vault health of " in ln:
            out[ln.split(" devnet: vault health of ", 1)[1].split(": ", 1)[0]] = ln
    return out


def failed(lines: list[str]) -> list[str]:
    return [ln for ln in lines if ln.startswith("FAIL")]


def test_seeded_devnet_passes_with_one_vault_health_line_per_actable_position(tmp_path, anvil, devnet, capsys,
                                                                               monkeypatch):
    code, lines = check_config(tmp_path, anvil, devnet, capsys, monkeypatch)
    assert code == 0 and failed(lines) == [], "\n".join(lines)
    assert any(ln.startswith(f"ok   {read_line(devnet)}") and f": {len(devnet['positions'])} position(s)" in ln
               for ln in lines)
    health = health_lines(lines)
    assert set(health) == names(devnet)  # carol's positions are watched only: no vault acts on them
    assert all(ln.startswith("ok   ") and "floor" in ln for ln in health.values()), health
    assert "via WETH, WBTC, USDC" in health["alice-aave"]  # one call per asset of the position
    keeper = devnet["roles"]["keeper"]
    for who, v in devnet["keeper_vaults"].items():
        vault = v["address"]
        line = f"ok   devnet: vault {vault} (acts for {who}): keeper() {keeper} is the configured key, not paused"
        assert line in lines
    # What each vault's release windows allow (the seed sets them per day), one line per vault.
    alice = devnet["keeper_vaults"]["alice"]["address"]
    assert f"ok   devnet: vault {alice} release windows: per 24 h: USDC 40000, WBTC 1, WETH 20" in lines


def test_a_vault_whose_health_reverts_fails_that_position_only(tmp_path, anvil, devnet, w3, snapshot, capsys,
                                                                 monkeypatch):
    """Carol gets a KeeperVault but registers only her ETH long with it, not her BTC short: the
    vault's health(ref) for the short reverts InvalidMarket (it cannot find the perp market)."""
    roles, carol = devnet["roles"], devnet["roles"]["carol"]
    d = Deployer(w3, roles["admin"])
    vault = d.deploy(C.ours("KeeperVault"), carol, roles["keeper"])
    for sym in ("WETH", "WBTC", "USDC"):
        d.send(vault.functions.setMarket(AAVE, devnet["aave_v3"]["pool"],
                                         asset_key(devnet["tokens"][sym]["address"]), True, 125 * E18 // 100), carol)
    mid = bytes.fromhex(devnet["morpho_blue"]["markets"]["WETH/USDC"]["id"][2:])
    d.send(vault.functions.setMarket(MORPHO, devnet["morpho_blue"]["morpho"], mid, True, 115 * E18 // 100), carol)
    eth_long = devnet["perp"]["markets"]["ETH-long"]
    d.send(vault.functions.setPerpMarket(devnet["perp"]["vault"], eth_long["collateral_token"], eth_long["index_token"],
                                         True, True, 5 * E18), carol)
    dep = copy.deepcopy(devnet)
    for p in dep["positions"]:
        if p["account"] == carol:
            p.update(holder="owner", vault=vault.address)

    code, lines = check_config(tmp_path, anvil, dep, capsys, monkeypatch)
    assert code != 0
    fails = failed(lines)
    # GMX v1 is gated on the devnet: carol's owner-held perps cannot be topped up by any vault (a
    # PositionRouter request is always for its sender); the path check says so for both.
    paths = [f for f in fails if "perp path of" in f]
    assert len(paths) == 2 and all("held by the owner's own address" in f for f in paths), paths
    (fail,) = [f for f in fails if f not in paths]
    assert fail.startswith(f"FAIL devnet: vault health of carol-perp-btc-short: vault {vault.address}: "
                           "health() reverted InvalidMarket(2, 0x0000000000000000000000000000000000000000, 0x")
    health = health_lines(lines)
    carol_ok = {"carol-aave", "carol-morpho", "carol-perp-eth-long"}
    assert set(health) == names(devnet) | carol_ok | {"carol-perp-btc-short"}
    assert all(health[k].startswith("ok   ") for k in names(devnet) | carol_ok)
    # carol's vault has no release windows: the keeper can release nothing, and check-config warns
    (release,) = [ln for ln in lines if f"vault {vault.address} release windows" in ln]
    assert release.startswith("warn ") and release.endswith("nothing; the keeper cannot release USDC, WBTC, WETH "
                                                            "(owner: setReleaseCap)")


def test_a_market_the_vault_does_not_allow_fails(tmp_path, anvil, devnet, w3, snapshot, capsys, monkeypatch):
    """alice's owner forbids the keeper her Morpho market (health still answers: it checks no rule),
    and WBTC on Aave (the position stays actable through WETH and USDC)."""
    alice = devnet["keeper_vaults"]["alice"]
    vault = Deployer(w3, alice["owner"]).at(alice["address"], C.ours("KeeperVault"))
    mid = devnet["morpho_blue"]["markets"]["WETH/USDC"]["id"]
    d = Deployer(w3, alice["owner"])
    d.send(vault.functions.setMarket(MORPHO, devnet["morpho_blue"]["morpho"], bytes.fromhex(mid[2:]), False, 0))
    d.send(vault.functions.setMarket(AAVE, devnet["aave_v3"]["pool"], asset_key(devnet["tokens"]["WBTC"]["address"]),
                                     False, 0))
    code, lines = check_config(tmp_path, anvil, devnet, capsys, monkeypatch)
    assert code != 0
    (fail,) = failed(lines)
    assert fail.startswith("FAIL devnet: vault health of alice-morpho: ")
    assert f"but vault {alice['address']} allows none of its markets" in fail
    aave = health_lines(lines)["alice-aave"]
    assert aave.startswith("ok   ") and aave.endswith("not allowed by the vault: WBTC")


def test_a_vault_address_without_a_vault_fails(tmp_path, anvil, devnet, capsys, monkeypatch):
    """bob's config names his own address as his vault: every call to it returns nothing."""
    dep = copy.deepcopy(devnet)
    bob = dep["keeper_vaults"]["bob"]["owner"]
    for p in dep["positions"]:
        if p["account"] == bob:
            p["vault"] = bob
    code, lines = check_config(tmp_path, anvil, dep, capsys, monkeypatch)
    assert code != 0
    fails = failed(lines)
    assert f"FAIL devnet: vault {bob} (acts for bob): keeper() returned nothing" in fails[0]
    assert {ln.split(": ")[1] for ln in fails[1:]} == {"vault health of bob-aave", "vault health of bob-morpho"}
    assert all("health() returned nothing" in ln for ln in fails[1:])


def test_an_account_without_positions_is_a_warning_not_a_failure(tmp_path, anvil, devnet, capsys, monkeypatch):
    dep = copy.deepcopy(devnet)
    nobody, alice = dep["roles"]["liquidator"], dep["keeper_vaults"]["alice"]["address"]
    dep["positions"].append({"id": "nobody-empty", "protocol": "aave_v3", "address": dep["aave_v3"]["pool"],
                             "account": nobody, "holder": "owner", "vault": alice, "owner": nobody})
    code, lines = check_config(tmp_path, anvil, dep, capsys, monkeypatch)
    assert code == 0 and failed(lines) == [], "\n".join(lines)
    assert "warn devnet: owner account nobody: no position on aave_v3: nothing to protect yet, or a wrong " \
           "address/protocols list" in lines
    assert any(ln.startswith(f"ok   devnet: vault {alice} (acts for alice, nobody): ") for ln in lines)


@pytest.mark.parametrize("field, other", [("pool", "morpho"), ("data_provider", "feed")])
def test_a_read_that_cannot_complete_fails_the_chain(tmp_path, anvil, devnet, capsys, monkeypatch, field, other):
    """The Aave pool (or data provider) in the config is another contract: code is there, the read fails."""
    dep = copy.deepcopy(devnet)
    dep["aave_v3"][field] = devnet["morpho_blue"]["morpho"] if other == "morpho" else devnet["feeds"]["ETH"]["address"]
    code, lines = check_config(tmp_path, anvil, dep, capsys, monkeypatch)
    assert code != 0
    assert f"ok   devnet: aave_v3.{field}: {dep['aave_v3'][field]}" in lines  # it has code: the old check passed
    fails = failed(lines)
    assert fails[0].startswith("FAIL devnet: aave_v3 metadata: ")
    (read,) = [ln for ln in fails if ln.startswith(f"FAIL {read_line(dep)}")]
    assert read.split(": ", 2)[2]  # the reason
    assert health_lines(lines) == {}  # nothing to call the vaults about without a read


def test_a_position_with_an_unusable_price_fails_by_name(tmp_path, anvil, devnet, w3, snapshot, capsys, monkeypatch):
    feed = devnet["feeds"]["BTC"]["address"]
    agg = w3.eth.contract(address=feed, abi=C.third_party("MockV3Aggregator").abi)
    Deployer(w3, devnet["roles"]["admin"]).send(agg.functions.updateAnswer(0))
    code, lines = check_config(tmp_path, anvil, devnet, capsys, monkeypatch)
    assert code != 0
    unusable = {ln.split(": ")[1]: ln for ln in failed(lines) if "price unusable" in ln}
    # every position priced in BTC, held by a vault or not (carol's are watched: still named)
    assert set(unusable) >= {"alice-aave", "alice-perp-btc-short", "carol-aave", "carol-perp-btc-short"}
    # (Aave's own oracle refuses a zero answer: bob's Aave position, WBTC-free, is unpriced too)
    assert not any(k.endswith(("-perp-eth-long", "-morpho")) for k in unusable)
    assert all("the keeper will not act on it" in ln for ln in unusable.values())


def test_stale_feeds_fail_every_position_they_price(tmp_path, anvil, devnet, w3, snapshot, capsys, monkeypatch):
    w3.provider.make_request("evm_increaseTime", [86_400 + 1])  # the deployment's heartbeat, passed
    w3.provider.make_request("evm_mine", [])
    code, lines = check_config(tmp_path, anvil, devnet, capsys, monkeypatch)
    assert code != 0
    stale = [ln.split(": ")[1] for ln in failed(lines) if "stale" in ln]
    assert len(stale) == len(devnet["positions"]), "\n".join(lines)  # every seeded position, each named once
    assert set(stale) == names(devnet, ("vault", "owner", "watch", "none", "preliq"))


def path_lines(lines: list[str]) -> dict[str, str]:
    """position name -> its whole 'perp path of' line."""
    return {ln.split(" devnet: perp path of ", 1)[1].split(": ", 1)[0]: ln
            for ln in lines if " devnet: perp path of " in ln}


def test_perp_paths_on_gated_gmx_say_request_and_fail_what_would_revert(tmp_path, anvil, devnet, w3, snapshot, capsys,
                                                                        monkeypatch):
    code, lines = check_config(tmp_path, anvil, devnet, capsys, monkeypatch)
    paths = path_lines(lines)
    assert set(paths) == {"alice-perp-eth-long", "alice-perp-btc-short"}
    assert all(ln.startswith("ok   ") and "gated GMX v1: top-up = PositionRouter request to "
               + devnet["perp"]["position_router"].lower() in ln for ln in paths.values()), paths
    # The owner lowers the fee cap below GMX's minimum and spends the vault's ether: both named.
    alice = devnet["keeper_vaults"]["alice"]
    d = Deployer(w3, devnet["roles"]["admin"])
    vault = d.at(alice["address"], C.ours("KeeperVault"))
    fee = devnet["perp"]["min_execution_fee"]
    d.send(vault.functions.setPerpRoute(devnet["perp"]["vault"], devnet["perp"]["position_router"], fee - 1),
           alice["owner"])
    d.send(vault.functions.withdraw("0x" + "00" * 20, 2**256 - 1), alice["owner"])
    code, lines = check_config(tmp_path, anvil, devnet, capsys, monkeypatch)
    assert code != 0
    for ln in path_lines(lines).values():
        assert ln.startswith("FAIL") and "ExecutionFeeTooHigh" in ln and "the vault holds 0 wei" in ln, ln
    # No route at all.
    d.send(vault.functions.setPerpRoute(devnet["perp"]["vault"], "0x" + "00" * 20, 0), alice["owner"])
    code, lines = check_config(tmp_path, anvil, devnet, capsys, monkeypatch)
    assert all("NoPerpRoute" in ln for ln in path_lines(lines).values())


def test_perp_paths_on_direct_gmx_are_direct_increases(tmp_path, anvil_direct, devnet_direct, capsys, monkeypatch):
    code, lines = check_config(tmp_path, anvil_direct, devnet_direct, capsys, monkeypatch)
    assert code == 0 and failed(lines) == [], "\n".join(lines)
    paths = path_lines(lines)
    assert len(paths) == 2 and all("direct GMX v1 (leverage on): top-up = the vault's transfer + increasePosition"
                                   in ln for ln in paths.values()), paths


@pytest.mark.parametrize("field", ["vault", "position_router"])
def test_a_wrong_gmx_address_fails_the_read_by_name(tmp_path, anvil, devnet, capsys, monkeypatch, field):
    """perp.vault (or perp.position_router) names another contract (Morpho): the read fails with a
    message naming the GMX contract it expected, and nothing is called on the vaults."""
    dep = copy.deepcopy(devnet)
    dep["perp"][field] = devnet["morpho_blue"]["morpho"]
    code, lines = check_config(tmp_path, anvil, dep, capsys, monkeypatch)
    assert code != 0
    (read,) = [ln for ln in failed(lines) if ln.startswith(f"FAIL {read_line(dep)}")]
    what = "GMX v1 Vault" if field == "vault" else "GMX v1 PositionRouter"
    assert f"{what} {devnet['morpho_blue']['morpho']}".lower() in read.lower() and "reverted" in read, read
    assert health_lines(lines) == {}
