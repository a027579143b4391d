"""`keeper preliq plan|apply` through the real CLI on the devnet: the parameters from the risk model,
a PreLiquidation created by Morpho's factory and authorised with the borrower's own key (reused when
applied again), refused with the wrong key or on a position that is not Morpho's; and the contract it
made lets a third party pre-liquidate bob inside the band while no keeper runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from keeper.chain import contracts as C
from keeper.devnet.deployer import Deployer
from tests.devnet.helpers import position, set_price, token

pytestmark = pytest.mark.usefixtures("snapshot")

# anvil's well-known development keys (refused off devnet chain ids): account 4 is bob, 3 alice
BOB_KEY = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a"
ALICE_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
WAD, E6, MAX = 10**18, 10**6, 2**256 - 1


def keeper(tmp_path, *args):
    (tmp_path / "config.toml").write_text('[store]\nurl = "sqlite:///k.db"\n[chains.devnet]\ndeployment = "dep.json"\n')
    env = {**os.environ, "BOB_KEY": BOB_KEY, "ALICE_KEY": ALICE_KEY}
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=180)


def test_plan_apply_and_a_pre_liquidation_through_the_contract_it_made(tmp, w3, devnet):
    plan = keeper(tmp, "preliq", "plan", "bob-morpho", "--vol", "WETH=0.8", "--json")
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    p = doc["params"]
    assert doc["name"] == "bob-morpho" and doc["lltv"] == pytest.approx(0.86)
    assert doc["ltv_now"] < p["pre_lltv"] < 0.86 and p["pre_lcf2"] == 1.0 and 1.0 < p["pre_lif1"] <= p["pre_lif2"]
    assert "Pre-liquidation from LTV" in doc["why"]

    wrong = keeper(tmp, "preliq", "apply", "bob-morpho", "--vol", "WETH=0.8", "--owner-key-env", "ALICE_KEY")
    assert wrong.returncode == 2 and "only" in wrong.stderr and "Traceback" not in wrong.stderr
    done = keeper(tmp, "preliq", "apply", "bob-morpho", "--vol", "WETH=0.8", "--owner-key-env", "BOB_KEY", "--json")
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)["applied"]
    assert applied["created"] is True and [t["call"] for t in applied["txs"]] == ["createPreLiquidation",
                                                                                  "setAuthorization"]
    pre = applied["pre_liquidation"]
    d = Deployer(w3, devnet["roles"]["admin"])
    factory = d.at(devnet["morpho_blue"]["preliq_factory"], C.preliq("PreLiquidationFactory"))
    morpho = d.at(devnet["morpho_blue"]["morpho"], C.third_party("Morpho"))
    bob = position(devnet, "bob-morpho")["account"]
    assert factory.functions.isPreLiquidation(w3.to_checksum_address(pre)).call()
    assert morpho.functions.isAuthorized(bob, w3.to_checksum_address(pre)).call()
    again = keeper(tmp, "preliq", "apply", "bob-morpho", "--vol", "WETH=0.8", "--owner-key-env", "BOB_KEY", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["applied"]["created"] is False

    # Inside the band (half way from preLltv to the LLTV), with no keeper running: a third party
    # repays a tenth of bob's debt at the contract's incentive.
    ltv = (p["pre_lltv"] + 0.86) / 2
    set_price(w3, devnet, "ETH", 4_000 / (3 * ltv))
    liquidator = devnet["roles"]["liquidator"]
    usdc = token(w3, devnet, "USDC")
    d.send(usdc.functions.mint(liquidator, 10_000 * E6))
    d.send(usdc.functions.approve(w3.to_checksum_address(pre), MAX), sender=liquidator)
    contract = d.at(pre, C.preliq("PreLiquidation"))
    mid = bytes.fromhex(devnet["morpho_blue"]["markets"]["WETH/USDC"]["id"][2:])
    shares = morpho.functions.position(mid, bob).call()[1]
    assert d.send(contract.functions.preLiquidate(bob, 0, shares // 10, b""), sender=liquidator)["status"] == 1
    assert morpho.functions.position(mid, bob).call()[1] == shares - shares // 10


def test_not_a_morpho_position_or_no_key_is_a_clear_error(tmp):
    aave = keeper(tmp, "preliq", "plan", "alice-aave", "--vol", "WETH=0.8")
    assert aave.returncode == 2 and "Morpho Blue" in aave.stderr and "Traceback" not in aave.stderr
    nokey = keeper(tmp, "preliq", "apply", "bob-morpho", "--vol", "WETH=0.8")
    assert nokey.returncode == 2 and "--owner-key-env" in nokey.stderr


def test_a_watched_position_is_planned_and_only_its_borrower_may_apply(tmp):
    """gina's Morpho position has no vault (she opted in with her own key at seed): ``plan`` proposes for
    it all the same, and ``apply`` takes only the borrower's own key."""
    plan = keeper(tmp, "preliq", "plan", "gina-morpho", "--vol", "WETH=0.8", "--json")
    assert plan.returncode == 0, plan.stderr
    doc = json.loads(plan.stdout)
    assert doc["name"] == "gina-morpho" and doc["ltv_now"] < doc["params"]["pre_lltv"] < 0.86
    wrong = keeper(tmp, "preliq", "apply", "gina-morpho", "--vol", "WETH=0.8", "--owner-key-env", "ALICE_KEY")
    assert wrong.returncode == 2 and "the borrower" in wrong.stderr and "Traceback" not in wrong.stderr
