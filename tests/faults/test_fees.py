"""Fees under stress, through ``keeper rebalance --execute``:
- mining stops while the base fee jumps above the keeper's bid: the transaction is replaced on the
  same nonce and mined within 3 blocks of mining resuming;
- a gas spike above the configured cap: nothing is sent, a ``gas_spike`` alert; with the urgency rule
  configured the cap may be exceeded: sent, and alerted too."""

import subprocess
import sys

from keeper.chain.fees import GWEI
from keeper.store import Store
from keeper.store.journal import Journal
from tests.devnet.helpers import set_price
from tests.faults.conftest import head, keeper_actions, wait_for


def _pending(w3, addr) -> bool:
    return w3.eth.get_transaction_count(addr, "pending") > w3.eth.get_transaction_count(addr, "latest")


def _base_fee(w3) -> int:
    return w3.eth.get_block("latest")["baseFeePerGas"]


def test_underpriced_is_bumped_on_the_same_nonce(env, w3, devnet, miner):
    set_price(w3, devnet, "ETH", 1_560)
    env.config(fees="bump_after_blocks = 1")
    keeper = devnet["roles"]["keeper"]
    nonce0 = w3.eth.get_transaction_count(keeper)
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    w3.provider.make_request("evm_setAutomine", [False])  # mining stops
    proc = subprocess.Popen([sys.executable, "-m", "keeper", "rebalance", f"{alice}:morpho", "--vol", "WETH=0.8",
                             "--execute"], cwd=env.root, env=env.environ(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    env.procs.append(proc)
    try:
        wait_for(lambda: _pending(w3, keeper) or proc.poll() is not None, 60, "the keeper's first bid in the mempool")
    except AssertionError:
        proc.kill()
        raise AssertionError(f"no bid in the mempool after 60 s; rebalance said: {proc.communicate()[0]}") from None
    assert _pending(w3, keeper), f"rebalance ended before its bid was seen: {proc.communicate()[0]}"
    first = w3.eth.get_block("pending", full_transactions=True)["transactions"]
    first_fee = max(t["maxFeePerGas"] for t in first if t["from"] == keeper)
    spike = max(first_fee * 4, 20 * GWEI)
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(spike)])
    resumed = head(w3)
    miner.start(0.5)  # mining resumes; its first block's base fee is above the first bid
    out, _ = proc.communicate(timeout=90)
    env._keep(out)
    assert proc.returncode == 0, out
    with Store.open(f"sqlite:///{env.root / 'k.db'}") as store:
        entry = Journal(store).entries("devnet")[-1]
    assert entry.status == "mined" and len(entry.attempts) >= 2, entry
    assert {a.nonce for a in entry.attempts} == {nonce0}  # replaced on the same nonce
    assert entry.attempts[1].max_fee >= entry.attempts[0].max_fee * 9 // 8  # a real (>= 12.5%) bump
    assert entry.mined_hash != entry.attempts[0].tx_hash
    assert entry.mined_block - resumed <= 3, (entry.mined_block, resumed)
    assert w3.eth.get_transaction_count(keeper) == nonce0 + 1  # exactly one landed
    tx = w3.eth.get_transaction(entry.mined_hash)
    assert tx["nonce"] == nonce0 and tx["maxFeePerGas"] >= spike


def _spike(w3, gwei: float) -> None:
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(int(gwei * GWEI))])
    w3.provider.make_request("evm_mine", [])


def test_gas_spike_above_the_cap_is_not_sent_and_alerted(env, w3, devnet, receiver):
    set_price(w3, devnet, "ETH", 1_560)
    env.config(fees="max_fee_gwei = 5\nmax_priority_fee_cap_gwei = 2")
    keeper = devnet["roles"]["keeper"]
    nonce0, start = w3.eth.get_transaction_count(keeper), head(w3)
    _spike(w3, 60)
    assert _base_fee(w3) >= 60 * GWEI
    alice = devnet["keeper_vaults"]["alice"]["address"][:10]
    proc = env.cli("rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--execute")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("keeper: error:") and "gas cap hit" in err[0], proc.stderr
    assert w3.eth.get_transaction_count(keeper, "pending") == nonce0 and not keeper_actions(w3, devnet, start)
    wait_for(lambda: "gas_spike" in receiver.kinds(), 10, "the gas_spike alert")
    alert = next(p for p in receiver.posts if p["kind"] == "gas_spike")
    assert alert["severity"] == "critical" and "not sent" in alert["title"]

    # The urgency rule (a position close to liquidation) may pay more than the normal cap.
    env.config(fees="max_fee_gwei = 5\nmax_priority_fee_cap_gwei = 2\n"
                    "urgent_threshold = 0.5\nurgent_max_fee_gwei = 500")
    _spike(w3, 60)
    proc = env.cli("rebalance", f"{alice}:morpho", "--vol", "WETH=0.8", "--execute")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert w3.eth.get_transaction_count(keeper) == nonce0 + 1 and len(keeper_actions(w3, devnet, start)) == 1
    wait_for(lambda: receiver.kinds().count("gas_spike") == 2, 10, "the second gas_spike alert")
    alert = [p for p in receiver.posts if p["kind"] == "gas_spike"][-1]
    assert alert["severity"] == "warning" and "above the normal gas cap" in alert["title"]
    tx = w3.eth.get_transaction(alert["fields"]["tx"])
    assert tx["maxFeePerGas"] > 5 * GWEI
