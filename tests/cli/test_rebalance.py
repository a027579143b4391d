"""`keeper plan` and `keeper rebalance` through the real CLI on the devnet: dry run by default,
--execute sends and reports the new health; unknown position, reserve too small and a missing
key are clear errors with a non-zero exit, and nothing is sent."""

import json
import math
import re

import pytest

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from tests.cli.devnet_cli import run
from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")
def test_plan_then_rebalance_execute(tmp, w3, devnet):
    set_price(w3, devnet, "ETH", 1_560)
    proc = run(tmp, "plan", "--json", "--vol", "WETH=0.8")
    assert proc.returncode == 0, proc.stderr
    (doc,) = json.loads(proc.stdout)["chains"]
    actions = [a for v in doc["vaults"] for a in v["actions"]]
    assert any(a["kind"] in ("top_up", "repay") for a in actions)
    # every position, acted on or not, with the model's inputs
    keys = {p["key"] for p in doc["positions"]}
    assert {a["position"] for a in actions} <= keys and len(keys) == len(doc["positions"]) >= 4
    for p in doc["positions"]:
        assert p["model"] == "tail" and p["horizon_hours"] > 0 and 0 <= p["p_liq"] <= 1 and p["name"]
        assert all(set(v) == {"annual", "source"} for v in p["vols"].values())
    weth = next(p["vols"]["WETH"] for p in doc["positions"] if "WETH" in p["vols"])
    assert weth == {"annual": pytest.approx(0.8), "source": "override"}
    alice = devnet["keeper_vaults"]["alice"]["address"]
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    dry = run(tmp, "rebalance", f"{alice[:10]}:morpho", "--vol", "WETH=0.8")
    assert dry.returncode == 0 and "dry run" in dry.stdout, dry.stderr
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0  # nothing sent
    done = run(tmp, "rebalance", f"{alice[:10]}:morpho", "--vol", "WETH=0.8", "--execute", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["health_after"] > 1.0 > result["health_before"]
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0 + 1


@pytest.mark.parametrize("args,needle", [
    (["rebalance", "0xnope"], "no position named '0xnope'"),
    (["rebalance", "{alice}:aave", "--amount", "1000", "WETH"], "reserve too small"),
    (["rebalance", "{alice}:aave", "--amount", "1", "NOPE"], "unknown asset"),
    (["rebalance", "{alice}:morpho", "--amount", "1", "WBTC"], "WBTC is not collateral for alice-morpho"),
])
def test_rebalance_errors_send_nothing(tmp, w3, devnet, args, needle):
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    proc = run(tmp, *[a.format(alice=alice) for a in args], "--execute")
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0


def test_positions_by_the_names_status_shows(tmp, w3, devnet):
    """`status` names every position; `rebalance` takes those names (any case); a watch-only one is
    refused as such, an unknown one lists the closest names on one short line; nothing is sent."""
    doc = json.loads(run(tmp, "status", "--json").stdout)
    names = {p["name"]: p["key"] for c in doc["chains"] for p in c["positions"]}
    assert set(names) == {"alice-aave", "alice-morpho", "alice-perp-eth-long", "alice-perp-btc-short", "bob-aave",
                          "bob-morpho", "carol-aave", "carol-morpho", "carol-perp-eth-long", "carol-perp-btc-short",
                          "dave-aave", "erin-aave", "frank-aave", "gina-morpho"}
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    proc = run(tmp, "rebalance", "BOB-AAVE", "--target-health", "1.0", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["name"] == "bob-aave" and result["position"] == names["bob-aave"] and result["action"] is None
    assert "bob-aave: already at health" in proc.stderr
    watched = run(tmp, "rebalance", "carol-aave")
    assert watched.returncode == 2 and "carol-aave is watch-only: no vault acts for it" in watched.stderr
    typo = run(tmp, "rebalance", "alcie-aave")
    (line,) = typo.stderr.strip().splitlines()
    assert typo.returncode == 2 and "closest: alice-aave" in line and len(line) < 200 and "devnet:" not in line
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0


def test_execute_without_a_key_is_refused(tmp, w3, devnet):
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    proc = run(tmp, "rebalance", f"{alice}:aave", "--amount", "1", "WETH", "--execute", key=False)
    assert proc.returncode == 2 and "no keeper key configured" in proc.stderr


@pytest.mark.parametrize("point", ["after_journal", "after_send", "after_receipt"])
def test_kill_9_mid_send_then_restart_neither_repeats_nor_loses(tmp, w3, devnet, point, monkeypatch):
    """The keeper process is killed (SIGKILL) at each point of the send; the restart settles the
    journal: exactly one transaction lands, and the next rebalance has nothing left to do."""
    set_price(w3, devnet, "ETH", 1_560)
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    keeper = devnet["roles"]["keeper"]
    nonce0 = w3.eth.get_transaction_count(keeper)
    monkeypatch.setenv("KEEPER_FAULT", point)
    crashed = run(tmp, "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--execute")
    monkeypatch.delenv("KEEPER_FAULT")
    assert crashed.returncode == -9, crashed.stdout + crashed.stderr
    sent = w3.eth.get_transaction_count(keeper) - nonce0
    assert sent == (0 if point == "after_journal" else 1)
    restart = run(tmp, "reconcile")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    assert "journal: mined" in restart.stdout
    assert w3.eth.get_transaction_count(keeper) == nonce0 + 1  # exactly one action landed
    again = run(tmp, "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--execute")
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    assert w3.eth.get_transaction_count(keeper) == nonce0 + 1  # and no second one


def _health(tmp, selector):
    proc = run(tmp, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = [p for c in json.loads(proc.stdout)["chains"] for p in c["positions"]]
    (row,) = [p for p in rows if all(part in p["key"] for part in selector.lower().split(":"))]
    return row["health"]


@pytest.mark.parametrize("extra", [[], ["--execute"]])
def test_target_health_at_or_below_the_current_one_does_nothing(tmp, w3, devnet, extra):
    """A target at or below the position's health: nothing to do, exit 0, nothing simulated or sent
    (it used to build a 0-amount action that the vault reverted with ZeroAmount, exit 5)."""
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    health = _health(tmp, f"{alice}:aave")
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    at = math.floor(health * 10_000) / 10_000  # its health as printed (interest only lowers it later by far less)
    for target in (at, 1.0):
        proc = run(tmp, "rebalance", f"{alice}:aave", "--target-health", str(target), *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"already at health {health:.4f} >= {target:g}: nothing to do" in proc.stdout
        assert "simulation" not in proc.stdout and "dry run" not in proc.stdout and "ZeroAmount" not in proc.stdout
    doc = json.loads(run(tmp, "rebalance", f"{alice}:aave", "--target-health", "1.0", "--json", *extra).stdout)
    assert doc["action"] is None and doc["simulated"] is False and doc["sent"] is False
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0


def test_dry_run_json_is_one_document(tmp, w3, devnet):
    set_price(w3, devnet, "ETH", 1_560)
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    proc = run(tmp, "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole of stdout: one JSON document, nothing else
    assert doc["simulated"] is True and doc["sent"] is False
    assert doc["action"]["kind"] in ("top_up", "repay") and int(doc["action"]["amount_raw"]) > 0
    assert doc["action"]["position"].startswith("devnet:morpho_blue:")
    assert doc["from"] == devnet["roles"]["keeper"] and doc["health_before"] < 1.0
    assert "simulation (eth_call through the vault): ok" in proc.stderr and "dry run" in proc.stderr
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0


def test_no_flag_says_why_the_planner_does_nothing(tmp, w3, devnet):
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    # No planner entry at all: inside its risk budget, with P and the budget.
    calm = run(tmp, "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8")
    assert calm.returncode == 0, calm.stderr
    assert "the planner has nothing to do" in calm.stdout
    assert re.search(r"why: inside its risk budget: P\(liq 24h\) \d+\.\d+% <= budget 1\.00%", calm.stdout), calm.stdout
    # A skipped position: the planner's own reason (ETH's feed answers from the future: never acted on).
    feed = w3.eth.contract(address=devnet["feeds"]["ETH"]["address"], abi=C.third_party("MockV3Aggregator").abi)
    now = w3.eth.get_block("latest")["timestamp"]
    Deployer(w3, devnet["roles"]["admin"]).send(feed.functions.updateRoundData(99, 2_000 * 10**8, now + 3_600, now))
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    skipped = run(tmp, "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8")
    assert skipped.returncode == 0, skipped.stderr
    assert "the planner has nothing to do" in skipped.stdout
    assert "why: price not usable (" in skipped.stdout and "never act on bad prices" in skipped.stdout
    doc = json.loads(run(tmp, "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--json").stdout)
    assert doc["action"] is None and doc["sent"] is False
    assert any("price not usable" in why for why in doc["why"])
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0


def test_dry_run_needs_no_key_it_calls_from_the_vaults_keeper(tmp, w3, devnet):
    """Without any key configured, a dry run simulates from the vault's keeper() read on chain —
    here rotated by the owner to dave, so the call's `from` cannot come from anywhere else."""
    set_price(w3, devnet, "ETH", 1_560)
    alice = devnet["keeper_vaults"]["alice"]["address"]
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    dry = run(tmp, "rebalance", f"{alice[:10]}:morpho", "--vol", "WETH=0.8", key=False)
    assert dry.returncode == 0, dry.stderr
    assert "simulation (eth_call through the vault): ok" in dry.stdout and "dry run" in dry.stdout
    vault = w3.eth.contract(address=alice, abi=C.ours("KeeperVault").abi)
    dave = devnet["roles"]["dave"]
    Deployer(w3, devnet["roles"]["alice"]).send(vault.functions.setKeeper(dave))
    doc = json.loads(run(tmp, "rebalance", f"{alice[:10]}:morpho", "--vol", "WETH=0.8", "--json", key=False).stdout)
    assert doc["from"] == dave and doc["simulated"] is True and doc["sent"] is False
    # --execute still needs the key, and says how to configure it; nothing is sent.
    proc = run(tmp, "rebalance", f"{alice[:10]}:morpho", "--vol", "WETH=0.8", "--execute", key=False)
    assert proc.returncode == 2 and "no keeper key configured" in proc.stderr and "Traceback" not in proc.stderr
    assert "KEEPER__KEEPER__KEY_ENV" in proc.stderr and "keeper.key_env" in proc.stderr
    assert w3.eth.get_transaction_count(devnet["roles"]["keeper"]) == nonce0


def test_rebalance_deleverages_the_vault_with_no_reserve(tmp, w3, devnet):
    """frank's vault holds no reserve: after a drop, the planner's own action for his position is a
    deleverage; the dry run simulates it through the vault, --execute sends it and health rises."""
    from keeper.devnet.uniswap import arbitrage

    set_price(w3, devnet, "ETH", 1_750)  # frank's health 10 * 1,750 * 0.825 / 14,000 = 1.03
    arbitrage(Deployer(w3, devnet["roles"]["admin"]), devnet["uniswap_v3"], "WETH/USDC", devnet["tokens"],
              {"WETH": 1_750.0, "USDC": 1.0, "WBTC": 30_000.0}, devnet["roles"]["lp"])
    dry = run(tmp, "rebalance", "frank-aave", "--vol", "WETH=0.8", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)["action"]
    assert planned["kind"] == "deleverage" and planned["swap"]["sells_asset"] == "WETH" and planned["asset"] == "USDC"
    assert "no reserve" in planned["reason"]["note"]
    done = run(tmp, "rebalance", "frank-aave", "--vol", "WETH=0.8", "--execute", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["health_after"] > result["health_before"] > 1.0
