"""Gas limits from one execution (``eth_createAccessList``): the bound is what it says, covers what
``eth_estimateGas`` finds on anvil, and a transaction sent with it is mined; a revert is refused
and decoded either way; a node without the method falls back to ``eth_estimateGas``. And
``ChainClient.batch_each`` gives each call's own error in its place."""

import pytest

from keeper.chain import contracts as C
from keeper.chain.tx import (
    COLD_EXTRA_PER_ADDRESS,
    COLD_EXTRA_PER_SLOT,
    MAX_CALL_DEPTH,
    TxRequest,
    gas_limit_from_access_list,
    simulate_in_order,
)
from keeper.errors import KeeperError, Reverted
from tests.chain.test_tx import sender
from tests.devnet.helpers import AAVE, asset_key


def test_the_bound_from_an_access_list():
    res = {"gasUsed": hex(300_000), "accessList": [{"address": "0x1", "storageKeys": ["0xa", "0xb"]},
                                                   {"address": "0x2", "storageKeys": []}]}
    extra = 2 * COLD_EXTRA_PER_ADDRESS + 2 * COLD_EXTRA_PER_SLOT
    exact = (300_000 + extra) * 5 / 4 * (64 / 63) ** MAX_CALL_DEPTH
    limit = gas_limit_from_access_list(res)
    assert limit >= exact and limit - exact < 1 and limit > 1.5 * 300_000  # rounded up, ~1.51x
    assert gas_limit_from_access_list({"gasUsed": hex(300_000), "accessList": []}) < limit


def _vault_call(w3, devnet, asset, amount):
    vault = w3.eth.contract(address=devnet["keeper_vaults"]["alice"]["address"], abi=C.ours("KeeperVault").abi)
    ref = (AAVE, devnet["aave_v3"]["pool"], asset_key(asset), vault.address)
    return TxRequest(vault.address, bytes.fromhex(vault.encode_abi("topUp", [ref, amount])[2:]), label="topUp")


@pytest.mark.usefixtures("snapshot")
def test_one_execution_limit_covers_the_estimate_and_is_mined(anvil, w3, devnet):
    s = sender(anvil.url)
    req = _vault_call(w3, devnet, devnet["tokens"]["WETH"]["address"], 10**18)
    limit = s.estimate_gas(req)
    estimated = int(s.client.request("eth_estimateGas", [s._call_obj(req), "pending"]), 16)
    assert limit >= estimated
    out = s.send(TxRequest(req.to, req.data, label="topUp", gas=limit))
    assert out.receipt is not None and out.receipt.ok and out.receipt.gas_used < limit


@pytest.mark.usefixtures("snapshot")
def test_a_revert_is_refused_and_decoded_with_or_without_access_lists(anvil, w3, devnet):
    s = sender(anvil.url)
    req = _vault_call(w3, devnet, "0x000000000000000000000000000000000000dEaD", 10**18)
    with pytest.raises(Reverted, match="topUp would revert: NotAllowed"):
        s.estimate_gas(req)
    # A geth-style reply (the revert in an "error" field of the result): the reason is replayed.
    with pytest.raises(Reverted, match="NotAllowed"):
        s.gas_from(req, {"accessList": [], "gasUsed": "0x5208", "error": "execution reverted"})
    s.client.unsupported.add("eth_createAccessList")  # a node without the method
    with pytest.raises(Reverted, match="NotAllowed"):
        s.estimate_gas(req)
    good = _vault_call(w3, devnet, devnet["tokens"]["WETH"]["address"], 10**18)
    estimated = int(s.client.request("eth_estimateGas", [s._call_obj(good), "pending"]), 16)
    assert s.estimate_gas(good) == int(estimated * s.gas_margin)


def test_an_unknown_method_reply_switches_to_estimate_gas(anvil):
    s = sender(anvil.url)
    unknown = KeeperError("http://127.0.0.1 rejected eth_createAccessList: Method not found (code -32601)")
    req = TxRequest("0x000000000000000000000000000000000000dEaD", b"", label="plain")
    assert s.gas_from(req, unknown) == int(21_000 * s.gas_margin)
    assert "eth_createAccessList" in s.client.unsupported


def test_batch_each_keeps_every_reply_in_place(anvil, devnet):
    s = sender(anvil.url)
    reverting = {"to": devnet["keeper_vaults"]["alice"]["address"], "data": "0xdeadbeef"}
    replies = s.client.batch_each([("eth_blockNumber", []), ("eth_call", [reverting, "latest"]),
                                   ("eth_noSuchMethod", []), ("eth_chainId", [])])
    assert isinstance(replies[0], str) and replies[0].startswith("0x")
    assert isinstance(replies[1], Reverted)
    assert isinstance(replies[2], KeeperError) and not isinstance(replies[2], Reverted)
    assert int(replies[3], 16) == 31337
    assert s.client.batch_each([]) == []


# ------------------------------------------------------------------ eth_simulateV1, in order
def _reserve(w3, devnet, symbol):
    token = w3.eth.contract(address=devnet["tokens"][symbol]["address"], abi=C.ours("TestERC20").abi)
    return token.functions.balanceOf(devnet["keeper_vaults"]["alice"]["address"]).call()


@pytest.mark.usefixtures("snapshot")
def test_simulating_in_order_gives_limits_that_are_mined(anvil, w3, devnet):
    s = sender(anvil.url)
    weth = devnet["tokens"]["WETH"]["address"]
    reqs = [_vault_call(w3, devnet, weth, 10**18), _vault_call(w3, devnet, weth, 2 * 10**18)]
    replies = simulate_in_order(s.client, [s.call_obj(r) for r in reqs])
    assert all(isinstance(r, dict) for r in replies), replies
    limits = [s.gas_from(r, reply) for r, reply in zip(reqs, replies)]
    for req, limit in zip(reqs, limits):
        estimated = int(s.client.request("eth_estimateGas", [s._call_obj(req), "pending"]), 16)
        assert limit >= estimated
        out = s.send(TxRequest(req.to, req.data, label="topUp", gas=limit))
        assert out.receipt is not None and out.receipt.ok and out.receipt.gas_used < limit


@pytest.mark.usefixtures("snapshot")
def test_simulation_runs_the_calls_in_order_and_refuses_a_revert_decoded(anvil, w3, devnet):
    """The second top-up fits the reserve alone but not after the first one took it: simulated in
    order, it reverts (and is refused, decoded) while the first passes; a foreign asset is refused."""
    s = sender(anvil.url)
    weth = devnet["tokens"]["WETH"]["address"]
    held = _reserve(w3, devnet, "WETH")
    part = 10**17
    assert part < held <= 50 * 10**18  # within the vault's cap per call
    first, second = _vault_call(w3, devnet, weth, held - part + 1), _vault_call(w3, devnet, weth, part)
    foreign = _vault_call(w3, devnet, "0x000000000000000000000000000000000000dEaD", 10**18)
    alone = simulate_in_order(s.client, [s.call_obj(second)])
    assert isinstance(alone[0], dict)
    replies = simulate_in_order(s.client, [s.call_obj(first), s.call_obj(second), s.call_obj(foreign)])
    assert isinstance(replies[0], dict)
    assert isinstance(replies[1], Reverted) and isinstance(replies[2], Reverted)
    with pytest.raises(Reverted, match="topUp would revert"):
        s.gas_from(second, replies[1])
    with pytest.raises(Reverted, match="topUp would revert: NotAllowed"):
        s.gas_from(foreign, replies[2])
    assert _reserve(w3, devnet, "WETH") == held  # nothing was sent


def test_simulation_needs_the_method(anvil):
    """A node that refuses eth_simulateV1 raises (the pipeline then falls back to one access list
    per call); no calls, no request."""
    s = sender(anvil.url)
    assert simulate_in_order(s.client, []) == []
    with pytest.raises(KeeperError):
        s.client.request("eth_simulateV1", [{"blockStateCalls": "not a list"}, "latest"])
