"""KeeperVault calldata: the direct eth_abi encoding equals web3's contract encoder, byte for byte."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from keeper.chain.contracts import ours
from keeper.protocols.vault_calls import _encode, _encode_static, _static_layout, _vault_functions

addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address("0x" + b.hex()))
refs = st.tuples(st.integers(0, 2), addresses, st.binary(min_size=32, max_size=32), addresses)
amounts = st.integers(0, 2**256 - 1)


@pytest.fixture(scope="module")
def web3_vault():
    return Web3().eth.contract(abi=ours("KeeperVault").abi)


def test_selectors_cover_the_keeper_functions():
    fns = _vault_functions()
    assert set(fns) == {"topUp", "repay", "withdrawExcess", "rebalance", "executePerpRequest", "cancelPerpRequest",
                        "deleverage", "reducePerp", "executePerpDecrease", "cancelPerpDecrease"}
    assert fns["reducePerp"][1] == ["(uint8,address,bytes32,address)", "uint256"]
    assert fns["executePerpDecrease"][1] == fns["cancelPerpDecrease"][1] == ["address", "bytes32"]
    assert fns["deleverage"][1] == ["((uint8,address,bytes32,address),address,address,uint256,uint256,address,uint256)"]
    assert fns["topUp"][1] == ["(uint8,address,bytes32,address)", "uint256"]
    assert fns["executePerpRequest"][1] == fns["cancelPerpRequest"][1] == ["address", "bytes32"]


@settings(max_examples=60, deadline=None)
@given(ref=refs, amount=amounts, to_ref=refs)
def test_encoding_matches_web3(web3_vault, ref, amount, to_ref):
    for name, args in (("topUp", [ref, amount]), ("repay", [ref, amount]), ("withdrawExcess", [ref, amount]),
                       ("rebalance", [ref, amount, to_ref]), ("executePerpRequest", [ref[1], ref[2]]),
                       ("cancelPerpRequest", [ref[1], ref[2]]), ("reducePerp", [ref, amount]),
                       ("executePerpDecrease", [ref[1], ref[2]]), ("cancelPerpDecrease", [ref[1], ref[2]]),
                       ("deleverage", [(ref, ref[1], to_ref[1], amount, amount // 3, to_ref[3], amount // 7)])):
        assert _encode(name, args) == bytes.fromhex(web3_vault.encode_abi(name, args)[2:]), name


def test_static_calls_take_the_hand_encoder_and_bad_values_still_fail():
    """topUp & co. are encoded word by word (the test above checks the bytes); what it does not take
    as is goes to eth_abi, which refuses out-of-range values as before."""
    ref = (0, "0x" + "11" * 20, b"\x22" * 32, "0x" + "33" * 20)
    for name in ("topUp", "repay", "withdrawExcess", "rebalance", "reducePerp", "executePerpRequest"):
        assert _static_layout(tuple(_vault_functions()[name][1])) is not None, name
    assert _static_layout(tuple(_vault_functions()["deleverage"][1])) is None  # a nested tuple: eth_abi
    layout = _static_layout(tuple(_vault_functions()["topUp"][1]))
    assert _encode_static(layout, [ref, 5]) is not None
    for bad in ([ref, -1], [ref, 2**256], [(0, "0x11", b"\x22" * 32, "0x" + "33" * 20), 5],
                [(256, *ref[1:]), 5], [ref, 1.5]):
        assert _encode_static(layout, bad) is None
        with pytest.raises(Exception):  # noqa: B017 - eth_abi's own encoding errors
            _encode("topUp", bad)
    # eth_abi pads a short bytes32 on the right: left to it, so the result is what it always was
    short = [(0, ref[1], b"\x22" * 31, ref[3]), 5]
    assert _encode_static(layout, short) is None
    assert _encode("topUp", short) == _vault_functions()["topUp"][0] + encode(_vault_functions()["topUp"][1], short)
