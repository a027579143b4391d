"""The fast EIP-1559 signer (keeper.chain.signing) against eth_account: byte-for-byte the same raw
transaction and hash for random keys and transactions, the right sender recovered, clear errors
for inputs that would make a wrong transaction, and HotKey.sign_transaction unchanged in output.
No chain needed."""

import dataclasses

import coincurve
import pytest
import rlp
from eth_account import Account
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keeper.chain.keys as keys_module
from keeper.chain.keys import HotKey
from keeper.chain.signing import sign_eip1559, signing_hash

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
OWN = "0x" + "11" * 32
TO = "0x000000000000000000000000000000000000bEEF"

private_keys = st.integers(1, SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))
uint256 = st.integers(0, 2**256 - 1)
chain_ids = st.one_of(st.sampled_from([1, 10, 137, 8453, 42161, 31337, 1337]), st.integers(1, 2**64))
nonces = st.one_of(st.just(0), st.integers(0, 1000), st.integers(0, 2**64 - 2))
gas = st.one_of(st.sampled_from([0, 21_000, 30_000_000]), st.integers(0, 2**64 - 1))
values = st.one_of(st.sampled_from([0, 1, 10**18, 2**255, 2**256 - 1]), uint256)
data = st.one_of(st.just(b""), st.binary(max_size=64), st.binary(min_size=55, max_size=60),
                 st.binary(min_size=1000, max_size=5000))
fee_amounts = st.one_of(st.sampled_from([0, 1, 10**9, 2 * 10**9, 500 * 10**9]), st.integers(0, 10**15), uint256)
addresses = st.binary(min_size=20, max_size=20)


@st.composite
def transactions(draw):
    max_fee = draw(fee_amounts)
    tip = draw(st.one_of(st.just(0), st.just(max_fee), st.integers(0, max_fee)))
    return {"chainId": draw(chain_ids), "nonce": draw(nonces), "maxPriorityFeePerGas": tip, "maxFeePerGas": max_fee,
            "gas": draw(gas), "to": to_checksum_address(draw(addresses)), "value": draw(values), "data": draw(data),
            "type": 2}


def address_form(tx: dict, form: str) -> dict:
    """The same transaction with ``to`` as eth_account needs it (checksummed) or in another form."""
    raw = bytes.fromhex(tx["to"][2:])
    return {**tx, "to": {"checksummed": tx["to"], "lower": tx["to"].lower(), "bytes": raw,
                         "no-0x": tx["to"][2:].lower()}[form]}


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(key=private_keys, tx=transactions(), form=st.sampled_from(["checksummed", "lower", "bytes", "no-0x"]),
       as_object=st.booleans(), with_access_list=st.booleans())
def test_same_bytes_hash_and_sender_as_eth_account(key, tx, form, as_object, with_access_list):
    expected = Account.sign_transaction(tx, key)
    ours_tx = address_form(tx, form)
    if with_access_list:
        ours_tx["accessList"] = []
    raw = sign_eip1559(ours_tx, coincurve.PrivateKey(key) if as_object else key)
    assert raw == bytes(expected.raw_transaction)
    assert keccak(raw) == bytes(expected.hash)
    assert Account.recover_transaction(raw) == Account.from_key(key).address
    # Decoded independently: the fields as given, minimal integers, y-parity 0/1, low s.
    assert raw[0] == 2
    items = rlp.decode(raw[1:])
    assert len(items) == 12 and items[8] == []
    ints = [int.from_bytes(items[i], "big") for i in (0, 1, 2, 3, 4, 6, 9, 10, 11)]
    assert ints[:6] == [tx["chainId"], tx["nonce"], tx["maxPriorityFeePerGas"], tx["maxFeePerGas"], tx["gas"],
                        tx["value"]]
    assert all(not items[i].startswith(b"\0") for i in (0, 1, 2, 3, 4, 6, 9, 10, 11))
    assert items[5] == bytes.fromhex(tx["to"][2:]) and items[7] == tx["data"]
    y_parity, r, s = ints[6:]
    assert y_parity in (0, 1) and 0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2
    unsigned = rlp.encode(items[:9])
    assert signing_hash(ours_tx) == keccak(b"\x02" + unsigned)


@pytest.mark.parametrize("chain_id", [1, 31337])
def test_known_edges(chain_id):
    for tx in ({"chainId": chain_id, "nonce": 0, "to": TO, "data": b"", "value": 0, "gas": 0, "maxFeePerGas": 0,
                "maxPriorityFeePerGas": 0, "type": 2},
               {"chainId": chain_id, "nonce": 2**64 - 2, "to": TO, "data": bytes(range(256)) * 200, "value": 2**255,
                "gas": 2**64 - 1, "maxFeePerGas": 2**256 - 1, "maxPriorityFeePerGas": 2**256 - 1, "type": 2}):
        expected = Account.sign_transaction(tx, OWN)
        assert sign_eip1559(tx, bytes.fromhex(OWN[2:])) == bytes(expected.raw_transaction)


GOOD = {"chainId": 1, "nonce": 3, "to": TO, "data": b"\x12\x34", "value": 5, "gas": 100_000,
        "maxFeePerGas": 30 * 10**9, "maxPriorityFeePerGas": 10**9, "type": 2}


def without(name):
    return {k: v for k, v in GOOD.items() if k != name}


@pytest.mark.parametrize("tx,needle", [
    (without("chainId"), "missing field.*chainId"),
    (without("nonce"), "missing field.*nonce"),
    (without("to"), "missing field.*to"),
    (without("data"), "missing field.*data"),
    (without("gas"), "missing field.*gas"),
    (without("maxFeePerGas"), "missing field.*maxFeePerGas"),
    ({**GOOD, "type": 0}, "only type 2"),
    ({**GOOD, "type": 1}, "only type 2"),
    ({**GOOD, "type": "0x2"}, "only type 2"),
    ({**GOOD, "gasPrice": 1}, "unsupported.*gasPrice"),
    ({**GOOD, "from": TO}, "unsupported.*from"),
    ({**GOOD, "accessList": [(TO, [])]}, "empty accessList"),
    ({**GOOD, "nonce": -1}, "'nonce' is negative"),
    ({**GOOD, "value": -5}, "'value' is negative"),
    ({**GOOD, "gas": -1}, "'gas' is negative"),
    ({**GOOD, "maxFeePerGas": -1}, "'maxFeePerGas' is negative"),
    ({**GOOD, "maxPriorityFeePerGas": -1}, "'maxPriorityFeePerGas' is negative"),
    ({**GOOD, "chainId": -1}, "'chainId' is negative"),
    ({**GOOD, "chainId": 0}, "'chainId' must not be 0"),
    ({**GOOD, "value": 2**256}, "'value' is too large"),
    ({**GOOD, "nonce": 2**64 - 1}, "'nonce' is too large"),
    ({**GOOD, "gas": 2**64}, "'gas' is too large"),
    ({**GOOD, "value": 1.0}, "'value' must be an int"),
    ({**GOOD, "nonce": "0x1"}, "'nonce' must be an int"),
    ({**GOOD, "value": True}, "'value' must be an int"),
    ({**GOOD, "maxPriorityFeePerGas": 31 * 10**9}, "exceeds maxFeePerGas"),
    ({**GOOD, "to": TO[:-2]}, "'to' must be 20 bytes"),
    ({**GOOD, "to": TO + "00"}, "'to' must be 20 bytes"),
    ({**GOOD, "to": b"\x01" * 19}, "'to' must be 20 bytes"),
    ({**GOOD, "to": b"\x01" * 32}, "'to' must be 20 bytes"),
    ({**GOOD, "to": ""}, "'to' must be 20 bytes"),
    ({**GOOD, "to": None}, "'to' must be an address"),
    ({**GOOD, "to": "0x" + "zz" * 20}, "'to' is not hex"),
    ({**GOOD, "to": "0x000000000000000000000000000000000000BeEF"}, "invalid EIP-55 checksum"),
    ({**GOOD, "data": "0x1234"}, "'data' must be bytes"),
    ({**GOOD, "data": None}, "'data' must be bytes"),
])
def test_inputs_that_would_make_a_wrong_transaction_are_refused(tx, needle):
    key = bytes.fromhex(OWN[2:])
    with pytest.raises(ValueError, match=needle) as e:
        sign_eip1559(tx, key)
    assert OWN[2:] not in str(e.value) and "11111111" not in str(e.value)


def test_type_may_be_omitted_and_addresses_in_any_case():
    expected = bytes(Account.sign_transaction(GOOD, OWN).raw_transaction)
    key = bytes.fromhex(OWN[2:])
    assert sign_eip1559(without("type"), key) == expected
    for to in (TO.lower(), "0x" + TO[2:].upper(), TO[2:], bytes.fromhex(TO[2:]), bytearray.fromhex(TO[2:])):
        assert sign_eip1559({**GOOD, "to": to}, key) == expected


@pytest.mark.parametrize("bad", [b"", b"\x11" * 31, b"\x11" * 33, b"\0" * 32, SECP256K1_N.to_bytes(32, "big"),
                                 "11" * 32])
def test_bad_private_keys_are_refused_without_echoing_them(bad):
    with pytest.raises(ValueError, match="private key") as e:
        sign_eip1559(GOOD, bad)
    assert "1111" not in str(e.value) and "\\x11" not in str(e.value)


# --- HotKey ----------------------------------------------------------------------------------

def hot_key(key=OWN) -> HotKey:
    return HotKey(Account.from_key(key), "env:TEST")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(key=private_keys, tx=transactions())
def test_hot_key_signs_the_same_bytes_as_before(key, tx):
    k = hot_key(key)
    keeper_tx = {f: tx[f] for f in ("chainId", "nonce", "to", "data", "value", "gas", "maxFeePerGas",
                                    "maxPriorityFeePerGas", "type")}  # TxSender._sign's shape
    assert k.sign_transaction(keeper_tx) == bytes(k.account.sign_transaction(keeper_tx).raw_transaction)
    assert k.sign_transaction(keeper_tx) == bytes(k.account.sign_transaction(keeper_tx).raw_transaction)  # cached


def test_hot_key_takes_the_fast_path_for_the_keepers_shape_only(monkeypatch):
    calls = []
    real = keys_module.sign_eip1559

    def spy(tx, key):
        calls.append(tx)
        return real(tx, key)

    monkeypatch.setattr(keys_module, "sign_eip1559", spy)
    k = hot_key()
    before = lambda tx: bytes(k.account.sign_transaction(tx).raw_transaction)  # noqa: E731
    assert k.sign_transaction(GOOD) == before(GOOD)
    assert len(calls) == 1
    others = [
        without("type"),  # eth_account infers the type
        {**GOOD, "accessList": [{"address": TO, "storageKeys": ["0x" + "00" * 32]}]},
        {**GOOD, "data": "0x1234"},  # hex data
        {**GOOD, "value": "0x5"},  # hex value
        {"chainId": 1, "nonce": 3, "to": TO, "data": b"", "value": 0, "gas": 21_000, "gasPrice": 10**9},  # legacy
    ]
    for tx in others:
        assert k.sign_transaction(tx) == before(tx)
    assert len(calls) == 1


def test_hot_key_errors_from_the_fast_path_are_value_errors_without_the_key():
    k = hot_key()
    for tx in ({**GOOD, "nonce": -1}, {**GOOD, "to": "0x1234"}, {**GOOD, "chainId": 0}):
        with pytest.raises(ValueError) as e:
            k.sign_transaction(tx)
        assert OWN[2:] not in str(e.value) and "11111111" not in str(e.value)


def test_hot_key_cache_does_not_leak_or_change_identity():
    k = hot_key()
    fresh = hot_key()
    k.sign_transaction(GOOD)  # builds the cached signer
    for text in (repr(k), str(k), f"{k}", repr(dataclasses.fields(k))):
        assert OWN[2:] not in text and "11111111" not in text and "x11\\x11" not in text
    assert k == fresh  # the cache is not compared
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.source = "other"  # still frozen
