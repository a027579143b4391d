"""Multicall3 batching: the hand codec equals eth-abi's; on anvil, results match direct calls."""

import pytest
from eth_abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from keeper.chain import contracts as C
from keeper.chain.client import ChainClient
from keeper.chain.multicall import AGGREGATE3, Call, Multicall, decode_aggregate3, encode_aggregate3

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
calls = st.lists(st.builds(Call, addresses, st.binary(max_size=100), st.booleans()), max_size=20)


@settings(max_examples=100)
@given(calls)
def test_encoding_matches_eth_abi(cs):
    want = AGGREGATE3 + encode(["(address,bool,bytes)[]"], [[(c.target, c.allow_failure, c.data) for c in cs]])
    assert encode_aggregate3(cs) == want


@settings(max_examples=100)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=100)), max_size=20))
def test_decoding_matches_eth_abi(results):
    ret = encode(["(bool,bytes)[]"], [results])
    assert [(r.success, r.data) for r in decode_aggregate3(ret)] == results
    assert decode(["(bool,bytes)[]"], ret)[0] == tuple(results)


@pytest.mark.parametrize("chunk_size,in_flight", [(1, 1), (3, 2), (500, 2)])
def test_on_anvil_results_equal_direct_calls(devnet, anvil, w3, chunk_size, in_flight):
    client = ChainClient("devnet", [anvil.url], 31337)
    mc = Multicall(client, devnet["multicall3"], chunk_size=chunk_size, in_flight=in_flight)
    pool = w3.eth.contract(address=devnet["aave_v3"]["pool"], abi=C.aave("Pool").abi)
    users = [p["account"] for p in devnet["positions"] if p["protocol"] == "aave_v3"] * 3
    block = w3.eth.block_number
    batch = [Call(pool.address, bytes.fromhex(pool.encode_abi("getUserAccountData", [u])[2:])) for u in users]
    # One call that fails (a non-contract target returns nothing; a reverting one returns False).
    token = w3.eth.contract(address=devnet["tokens"]["USDC"]["address"], abi=C.ours("TestERC20").abi)
    batch.append(Call(token.address, bytes.fromhex(token.encode_abi("transfer", [users[0], 10**30])[2:])))
    results = mc.call(batch, block)
    mc.close()
    assert len(results) == len(batch)
    for u, r in zip(users, results):
        assert r.success
        got = decode(["uint256"] * 6, r.data)
        assert list(got) == pool.functions.getUserAccountData(u).call(block_identifier=block)
    assert not results[-1].success


def test_stream_fixed_yields_each_chunk_in_order_while_the_rest_are_in_flight(devnet, anvil):
    from keeper.chain.multicall import FixedChunk

    client = ChainClient("devnet", [anvil.url], devnet["chain_id"])
    mc = Multicall(client, devnet["multicall3"], in_flight=2)
    try:
        tokens = [t["address"] for t in devnet["tokens"].values()]
        chunks = [FixedChunk([Call(t, bytes.fromhex("313ce567"))], [32]) for t in tokens * 3]  # decimals()
        block = client.block_number()
        stream = mc.stream_fixed(chunks, block)
        first = next(stream)  # the first chunk is usable before the stream is drained
        assert first == [devnet["tokens"]["WETH"]["decimals"]]
        expected = [[t["decimals"]] for t in devnet["tokens"].values()] * 3
        assert [first, *stream] == mc.call_fixed(chunks, block) == expected
        with pytest.raises(TypeError):
            next(mc.stream_fixed(chunks, "latest"))  # pinned to a block number, always
    finally:
        mc.close()
