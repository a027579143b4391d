"""The transaction sender on anvil: a reverting call is refused and never sent; a normal send is
mined; an underpriced transaction is replaced on the same nonce with a >= 12.5% bump."""

import threading
import time

import pytest

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.fees import GWEI, FeePolicy
from keeper.chain.keys import load_key
from keeper.chain.tx import TxRequest, TxSender
from keeper.devnet.anvil import Anvil, rpc_call
from keeper.errors import GasCapHit, Reverted
from tests.devnet.helpers import AAVE, asset_key

KEEPER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil account 1
POLICY = FeePolicy(min_priority_fee=1 * GWEI, max_priority_fee=2 * GWEI, max_fee_cap=500 * GWEI,
                   max_priority_fee_cap=50 * GWEI, headroom_blocks=0)


def sender(url, **kw):
    client = ChainClient("devnet", [url], 31337)
    key = load_key(env_var="K", chain_id=31337, environ={"K": KEEPER_KEY})
    return TxSender(client, key, 31337, kw.pop("policy", POLICY), abis=[C.ours("KeeperVault").abi], poll=0.05, **kw)


@pytest.mark.usefixtures("snapshot")
def test_a_reverting_call_is_refused_and_never_sent(anvil, w3, devnet):
    s = sender(anvil.url)
    vault = w3.eth.contract(address=devnet["keeper_vaults"]["alice"]["address"], abi=C.ours("KeeperVault").abi)
    stranger_asset = "0x000000000000000000000000000000000000dEaD"
    ref = (AAVE, devnet["aave_v3"]["pool"], asset_key(stranger_asset), vault.address)
    req = TxRequest(vault.address, bytes.fromhex(vault.encode_abi("topUp", [ref, 10**18])[2:]), label="topUp")
    nonce_before = s.nonces.pending_count()
    with pytest.raises(Reverted) as e:
        s.send(req)
    assert e.value.reason == "NotAllowed" and "topUp would revert: NotAllowed" in str(e.value)
    assert s.nonces.pending_count() == nonce_before


@pytest.mark.usefixtures("snapshot")
def test_a_keeper_top_up_is_mined(anvil, w3, devnet):
    s = sender(anvil.url)
    vault = w3.eth.contract(address=devnet["keeper_vaults"]["alice"]["address"], abi=C.ours("KeeperVault").abi)
    weth = devnet["tokens"]["WETH"]["address"]
    ref = (AAVE, devnet["aave_v3"]["pool"], asset_key(weth), vault.address)
    out = s.send(TxRequest(vault.address, bytes.fromhex(vault.encode_abi("topUp", [ref, 10**18])[2:]), label="topUp"))
    assert out.receipt and out.receipt.ok and len(out.attempts) == 1


@pytest.mark.chain  # starts its own anvil
def test_underpriced_transaction_is_bumped_on_the_same_nonce():
    with Anvil() as node:
        rpc_call(node.url, "evm_setAutomine", [False])
        signed = []
        first_signed = threading.Event()

        def journal(out, attempt):
            signed.append(attempt)
            first_signed.set()

        s = sender(node.url, bump_after_blocks=1, on_signed=journal, max_wait_seconds=60)
        to = "0x000000000000000000000000000000000000bEEF"
        stop = threading.Event()

        def miner():
            # Once the first bid is out, the base fee jumps to 6 gwei for a few blocks (above that
            # bid), then falls back as EIP-1559 lowers it after empty blocks.
            first_signed.wait(10)
            for i in range(400):
                if stop.is_set():
                    return
                try:
                    if i < 4:
                        rpc_call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(6 * GWEI)])
                    rpc_call(node.url, "evm_mine", [])
                except Exception:  # the node is gone: the test is over
                    return
                time.sleep(0.15)

        base = int(rpc_call(node.url, "eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
        assert base <= 1 * GWEI  # the first bid (base + 1..2 gwei tip) is below 6 gwei
        t = threading.Thread(target=miner, daemon=True)
        t.start()
        out = s.send(TxRequest(to, b"", value=1, label="transfer", gas=21_000), simulate=False)
        stop.set()
        t.join()
        assert len(out.attempts) >= 2 and {a.nonce for a in out.attempts} == {out.nonce}
        for prev, nxt in zip(out.attempts, out.attempts[1:]):
            assert nxt.bid.max_fee_per_gas * 8 >= prev.bid.max_fee_per_gas * 9
            assert nxt.bid.max_priority_fee_per_gas * 8 >= prev.bid.max_priority_fee_per_gas * 9
        assert out.mined_hash in {a.tx_hash for a in out.attempts}
        assert [a.tx_hash for a in signed] == [a.tx_hash for a in out.attempts]  # journaled before broadcast


@pytest.mark.chain  # starts its own anvil
def test_gas_cap_hit_sends_nothing():
    with Anvil() as node:
        rpc_call(node.url, "anvil_setNextBlockBaseFeePerGas", [hex(900 * GWEI)])
        rpc_call(node.url, "evm_mine", [])
        s = sender(node.url, policy=FeePolicy(max_fee_cap=100 * GWEI))
        before = s.nonces.pending_count()
        with pytest.raises(GasCapHit, match="gas cap hit"):
            s.send(TxRequest("0x000000000000000000000000000000000000bEEF", b"", value=1, label="transfer", gas=21_000),
                   simulate=False)
        assert s.nonces.pending_count() == before
        # The urgency rule in config may exceed the cap, and only it.
        urgent = sender(node.url, policy=FeePolicy(max_fee_cap=100 * GWEI, urgent_threshold=0.9,
                                                   urgent_max_fee_cap=5_000 * GWEI))
        out = urgent.send(TxRequest("0x000000000000000000000000000000000000bEEF", b"", value=1, label="transfer",
                                    gas=21_000), urgency=1.0, simulate=False)
        assert out.receipt is not None and out.attempts[0].bid.over_normal_cap
