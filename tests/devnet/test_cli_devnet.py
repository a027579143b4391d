"""The devnet through the real CLI: up --detach, status --json, price, down; and a fork."""

import json
import os
import subprocess
import sys
import time

import pytest
from web3 import Web3

from keeper.chain import contracts as C
from keeper.devnet.anvil import Anvil, free_port, rpc_call
from keeper.devnet.deploy import MULTICALL3
from keeper.devnet.uniswap import pool_price

pytestmark = pytest.mark.chain  # starts its own anvil


def keeper(args, state, timeout=180):
    env = {**os.environ, "KEEPER__DEVNET__STATE_DIR": str(state)}
    return subprocess.run([sys.executable, "-m", "keeper", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=state.parent)


def status_rows(state, dep) -> tuple[dict, int]:
    """`keeper status --json` rows keyed by the deployment's position ids, and the read's block (the
    devnet mines every second: comparisons with the protocol are made at that block)."""
    proc = keeper(["status", "--json"], state)
    assert proc.returncode == 0, proc.stderr
    (chain,) = json.loads(proc.stdout)["chains"]
    by_key = {(r["protocol"], r["account"].lower(), r["market"].lower()): r for r in chain["positions"]}
    out = {}
    for p in dep["positions"]:
        market = {"aave_v3": "pool", "morpho_blue": p.get("market", "")}.get(p["protocol"])
        if market is None:
            market = f"{p['collateral_token']}:{p['index_token']}:{'long' if p['is_long'] else 'short'}"
        out[p["id"]] = by_key[(p["protocol"], p["account"].lower(), market.lower())]
    return out, chain["block"]


@pytest.fixture
def detached(tmp_path):
    state = tmp_path / "state"
    port = free_port()
    proc = keeper(["devnet", "up", "--detach", "--port", str(port)], state)
    assert proc.returncode == 0, proc.stderr
    yield state, f"http://127.0.0.1:{port}"
    keeper(["devnet", "down"], state)


def test_up_status_price_down(detached):
    state, url = detached
    dep = json.loads((state / "devnet.json").read_text())
    # A detached devnet mines on its own, a block a second, with no transaction sent.
    w3 = Web3(Web3.HTTPProvider(url))
    first = w3.eth.block_number
    time.sleep(3.5)
    assert dep["block_time"] == 1 and w3.eth.block_number >= first + 2
    proc = keeper(["watch", dep["positions"][0]["account"], "--blocks", "3", "--json"], state, timeout=60)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 3, proc.stderr
    assert dep["chain_id"] == 31337 and dep["rpc_url"] == url
    rows, block = status_rows(state, dep)
    assert set(rows) == {p["id"] for p in dep["positions"]}
    # Aave's health is the pool's own answer, to the wei.
    w3 = Web3(Web3.HTTPProvider(url))
    pool = w3.eth.contract(address=dep["aave_v3"]["pool"], abi=C.aave("Pool").abi)
    hf = pool.functions.getUserAccountData(rows["alice-aave"]["account"]).call(block_identifier=block)[5]
    assert int(rows["alice-aave"]["health_wad"]) == hf
    assert all(not r["liquidatable"] for r in rows.values())
    assert rows["alice-aave"]["liquidation_price"] and rows["alice-aave"]["distance_pct"] < 0

    proc = keeper(["devnet", "price", "ETH", "1400"], state)
    assert proc.returncode == 0 and "ETH = 1400 USD" in proc.stdout, proc.stderr
    # the Uniswap pool follows the feed (arbitrage), as on a real chain
    assert "Uniswap WETH/USDC arbitraged to 1,400 USDC" in proc.stdout, proc.stdout
    assert pool_price(w3, dep["uniswap_v3"]["pools"]["WETH/USDC"], dep["tokens"]) == pytest.approx(1_400, rel=1e-6)
    keeper(["devnet", "price", "BTC", "21000"], state)
    rows, _block = status_rows(state, dep)
    assert rows["alice-aave"]["liquidatable"] and rows["carol-aave-unprotected"]["liquidatable"]
    assert not rows["alice-perp-btc-short"]["liquidatable"]  # a short gains when BTC falls

    proc = keeper(["watch", rows["carol-aave-unprotected"]["account"], "--blocks", "1", "--json",
                   "--protocol", "aave_v3"], state)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.splitlines()[0])
    (watched,) = doc["positions"]
    carol = rows["carol-aave-unprotected"]["account"]
    assert int(watched["health_wad"]) == pool.functions.getUserAccountData(carol).call(block_identifier=doc["block"])[5]

    proc = keeper(["check-config"], state)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout and "ok   devnet: aave_v3.pool" in proc.stdout

    pid = json.loads((state / "devnet-state.json").read_text())["pid"]
    proc = keeper(["devnet", "down"], state)
    assert proc.returncode == 0 and f"pid {pid}" in proc.stdout
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (state / "devnet-state.json").exists()


def test_second_up_is_refused_while_one_runs(detached):
    state, _url = detached
    proc = keeper(["devnet", "up", "--detach", "--port", str(free_port())], state)
    assert proc.returncode == 2
    assert "already running" in proc.stderr and "keeper devnet down" in proc.stderr


def test_up_on_a_fork_keeps_the_chains_multicall(tmp_path):
    """Fork a running chain (here another local anvil standing in for a real chain's RPC)."""
    with Anvil() as upstream:
        # The upstream chain has Multicall3 at its canonical address, as real chains do.
        code = C.ours("Multicall3").deployed_bytecode
        rpc_call(upstream.url, "anvil_setCode", [MULTICALL3, code])
        rpc_call(upstream.url, "anvil_mine", ["0x5"])
        state = tmp_path / "fork"
        port = free_port()
        proc = keeper(["devnet", "up", "--detach", "--port", str(port), "--fork-url", upstream.url], state)
        try:
            assert proc.returncode == 0, proc.stderr
            dep = json.loads((state / "devnet.json").read_text())
            assert dep["fork_url"] == upstream.url
            assert rpc_call(f"http://127.0.0.1:{port}", "eth_getCode", [MULTICALL3, "latest"]) == code
            assert dep["deployed_at_block"] > 5  # built on top of the upstream's history
            assert len(dep["positions"]) == 14
            proc = keeper(["status", "--json"], state)
            assert proc.returncode == 0, proc.stderr
            assert len(json.loads(proc.stdout)["chains"][0]["positions"]) == 14
        finally:
            keeper(["devnet", "down"], state)
