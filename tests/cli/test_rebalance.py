"""`keeper plan` and `keeper rebalance` through the real CLI on the devnet: dry run by default,
--execute sends and reports the new health; unknown position, reserve too small and a missing
key are clear errors with a non-zero exit, and nothing is sent."""

import json
import os
import subprocess
import sys

import pytest

from tests.devnet.helpers import set_price

pytestmark = pytest.mark.usefixtures("snapshot")
KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def run(tmp_path, *args, key=True):
    (tmp_path / "config.toml").write_text(
        '[store]\nurl = "sqlite:///k.db"\n' + ('[keeper]\nkey_env = "KEEPER_TEST_KEY"\n' if key else "")
        + '[chains.devnet]\ndeployment = "dep.json"\n')
    env = {**os.environ, "KEEPER_TEST_KEY": KEEPER_KEY}
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=180)


@pytest.fixture
def tmp(tmp_path, anvil, devnet):
    (tmp_path / "dep.json").write_text(json.dumps({**devnet, "rpc_url": anvil.url}))
    return tmp_path


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
    (["rebalance", "0xnope"], "unknown position"),
    (["rebalance", "{alice}:aave", "--amount", "1000", "WETH"], "reserve too small"),
    (["rebalance", "{alice}:aave", "--amount", "1", "NOPE"], "unknown asset"),
])
def test_rebalance_errors_send_nothing(tmp, w3, devnet, args, needle):
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    nonce0 = w3.eth.get_transaction_count(devnet["roles"]["keeper"])
    proc = run(tmp, *[a.format(alice=alice) for a in args], "--execute")
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
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
