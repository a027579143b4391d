"""The keeper acting on Aave positions on both versions users run (v3.0.2 from npm, v3.7 from
aave-v3-origin): a crash the keeper repairs, after which a third party's ``liquidationCall``
reverts while from the state before the keeper acted it succeeds; owner-held and vault-held
positions; a release of excess that stays above the vault's floor; and a pool whose revision the
keeper does not know, refused by ``keeper rebalance --execute`` without sending anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from web3 import Web3

from keeper.app.execution import execute
from keeper.app.manual import find, manual_action, open_session, plan_now
from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from keeper.domain import WAD, ActionKind, Protocol
from keeper.errors import Reverted
from tests.daemon.helpers import KEEPER_KEY, devnet_config
from tests.devnet.helpers import revert_name, set_price, token

MAX = 2**256 - 1
VOLS = {"WETH": 0.8, "WBTC": 0.7}
HEALTHY = {"HEALTH_FACTOR_NOT_BELOW_THRESHOLD", "HealthFactorNotBelowThreshold"}


def snapshot(w3) -> str:
    return w3.provider.make_request("evm_snapshot", [])["result"]


def revert(w3, snap: str) -> None:
    assert w3.provider.make_request("evm_revert", [snap])["result"]


def liquidate(net, account: str) -> str:
    """A third party liquidates ``account``'s WETH for its USDC debt: "ok", or the revert's name."""
    w3, dep = net.w3, net.dep
    d = Deployer(w3, dep["roles"]["admin"])
    liq = dep["roles"]["liquidator"]
    usdc = token(w3, dep, "USDC")
    pool = w3.eth.contract(address=dep["aave_v3"]["pool"], abi=C.aave("Pool").abi)
    d.send(usdc.functions.mint(liq, 10**13))
    d.send(usdc.functions.approve(pool.address, MAX), sender=liq)
    try:
        d.send(pool.functions.liquidationCall(dep["tokens"]["WETH"]["address"], usdc.address, account, 10**9, False),
               sender=liq)
    except Reverted as e:
        return revert_name(e)
    return "ok"


@pytest.fixture
def cfg(tmp_path, aave_net, monkeypatch):
    return devnet_config(tmp_path, aave_net.url, aave_net.dep, monkeypatch)


def test_a_crash_is_repaired_and_liquidation_then_reverts(cfg, aave_net):
    w3, dep = aave_net.w3, aave_net.dep
    set_price(w3, dep, "ETH", 1_400)  # -30%: bob's owner-held position is under, alice's vault position at risk
    ids = {p["id"]: p["account"] for p in dep["positions"]}
    before = snapshot(w3)
    assert liquidate(aave_net, ids["bob-aave"]) == "ok"  # without the keeper, bob is liquidated
    revert(w3, before)
    session = open_session(cfg, "devnet", vols=VOLS)
    try:
        aave = {p.key: p for b in session.books for p in b.positions if p.protocol is Protocol.AAVE_V3}
        assert all(p.price_ok and p.extra["verified"] for p in aave.values()), \
            {k: p.price_issue for k, p in aave.items()}
        protective = [(book, a) for book, plan in plan_now(session) for a in plan.actions
                      if a.position_key in aave and a.kind in (ActionKind.TOP_UP, ActionKind.REPAY)]
        acted = {aave[a.position_key].account.lower() for _b, a in protective}
        # bob's is under water and must be repaired; alice's (health about 1.14) is acted on only if
        # the risk model asks for it (the joint-move model of stage 9 decides that).
        assert ids["bob-aave"].lower() in acted
        for book, action in protective:
            out, fresh, _requests = execute(cfg, session, book, action)
            assert out.receipt().ok
            assert fresh is not None and fresh.health_wad >= WAD and fresh.health > aave[action.position_key].health
    finally:
        session.close()
    for pid in ("alice-aave", "bob-aave"):
        assert liquidate(aave_net, ids[pid]) in HEALTHY, pid


def test_excess_is_released_above_the_floor(cfg, aave_net):
    w3, dep = aave_net.w3, aave_net.dep
    set_price(w3, dep, "ETH", 2_600)  # +30%: alice's Aave position is far safer than it needs to be
    session = open_session(cfg, "devnet", vols=VOLS)
    try:
        alice = dep["keeper_vaults"]["alice"]["address"]
        pos, book = find(session, f"{alice[:10]}:aave")
        action = manual_action(session, pos, book, withdraw_excess=True)
        assert action.kind is ActionKind.WITHDRAW_EXCESS
        vault = Web3.to_checksum_address(book.vault)  # web3 takes checksummed addresses only
        reserve = token(w3, dep, action.asset.symbol).functions.balanceOf(vault).call()
        out, fresh, _requests = execute(cfg, session, book, action)
        assert out.receipt().ok
        assert fresh is not None and fresh.health >= book.floors[pos.key] and fresh.health < pos.health
        assert token(w3, dep, action.asset.symbol).functions.balanceOf(vault).call() > reserve
    finally:
        session.close()


def test_an_unknown_revision_is_refused_without_acting(tmp_path, aave_net):
    w3, dep = aave_net.w3, aave_net.dep
    fake = Deployer(w3, dep["roles"]["admin"]).deploy(C.ours("PoolRevisionOverride"), dep["aave_v3"]["pool"], 99)
    (tmp_path / "dep.json").write_text(json.dumps({**dep, "rpc_url": aave_net.url,
                                                   "aave_v3": {**dep["aave_v3"], "pool": fake.address}}))
    (tmp_path / "config.toml").write_text('[store]\nurl = "sqlite:///k.db"\n[keeper]\nkey_env = "KEEPER_TEST_KEY"\n'
                                          '[chains.devnet]\ndeployment = "dep.json"\n')
    set_price(w3, dep, "ETH", 1_400)
    keeper = dep["roles"]["keeper"]
    nonce = w3.eth.get_transaction_count(keeper)
    alice = dep["keeper_vaults"]["alice"]["address"]
    env = {**os.environ, "KEEPER_TEST_KEY": KEEPER_KEY}
    for args in (["status"], ["plan"], ["rebalance", f"{alice[:10]}:aave", "--execute"]):
        proc = subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=180)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "revision 99" in proc.stderr and 'aave_v3.health = "pool"' in proc.stderr, proc.stderr
    assert w3.eth.get_transaction_count(keeper) == nonce


def test_status_shows_every_aave_position_verified(tmp_path, aave_net):
    (tmp_path / "dep.json").write_text(json.dumps({**aave_net.dep, "rpc_url": aave_net.url}))
    (tmp_path / "config.toml").write_text('[chains.devnet]\ndeployment = "dep.json"\n')
    proc = subprocess.run([sys.executable, "-m", "keeper", "status", "--json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["chains"][0]["positions"]
    aave = {r["account"].lower(): r for r in rows if r["protocol"] == "aave_v3"}
    want = {p["account"].lower() for p in aave_net.dep["positions"] if p["protocol"] == "aave_v3"}
    assert set(aave) == want and all(r["health_verified"] is True for r in aave.values()), aave
    assert all(r["health_verified"] is None for r in rows if r["protocol"] != "aave_v3")
    dave = next(p["account"] for p in aave_net.dep["positions"] if p["id"] == "dave-aave-emode")
    assert aave[dave.lower()]["market_label"] == "pool e-mode 1"
    table = subprocess.run([sys.executable, "-m", "keeper", "status"], capture_output=True, text=True,
                           cwd=tmp_path, timeout=180)
    assert table.returncode == 0 and table.stdout.count("✓") == len(want), table.stdout
