"""The keeper's one address type (``keeper.domain.Address``), built where addresses come in (config,
deployment files, CLI arguments, chain data) and compared as is everywhere else. Pure, no chain."""

from __future__ import annotations

import json
import pickle

import pytest
from eth_utils.address import to_checksum_address

from keeper.config import AccountConfig, FeedConfig, parse_address
from keeper.domain import USD_ADDRESS, ZERO_ADDRESS, Address
from keeper.views import shown_address

CHECKSUMMED = "0x4C2F7092C2aE51D986bEFEe378e50BD4dB99C901"
LOWER = CHECKSUMMED.lower()
UPPER = "0x" + CHECKSUMMED[2:].upper()


@pytest.mark.parametrize("given", [CHECKSUMMED, LOWER, UPPER, "0X" + CHECKSUMMED[2:]])
def test_every_spelling_becomes_the_one_lower_case_form(given):
    a = Address(given)
    assert type(a) is Address and a == LOWER and str(a) == LOWER


def test_idempotent_and_cheap_for_an_address():
    a = Address(CHECKSUMMED)
    assert Address(a) is a
    assert parse_address(a) is a


def test_equal_to_the_plain_lower_case_string_in_sets_dicts_and_json():
    a = Address(CHECKSUMMED)
    assert a == LOWER and hash(a) == hash(LOWER)
    assert {LOWER: 1}[a] == 1 and {a: 1}[LOWER] == 1
    assert a != CHECKSUMMED  # plain strings of another case are not normalised by comparing: build an Address
    assert json.dumps({a: a}) == json.dumps({LOWER: LOWER})
    assert f"{a}" == LOWER and a[:8] == LOWER[:8]
    assert pickle.loads(pickle.dumps(a)) == a


def test_no_instance_dict():
    assert not hasattr(Address(LOWER), "__dict__")


@pytest.mark.parametrize("bad", ["", "0x", "0x1234", LOWER + "00", LOWER[2:], "0x" + "g" * 40, " " + LOWER,
                                 LOWER + "\n", "usd", None, 42, b"\x00" * 20])
def test_anything_else_is_refused_naming_the_value(bad):
    with pytest.raises(ValueError, match="not an address") as e:
        Address(bad)
    assert repr(bad) in str(e.value)


def test_constants():
    assert ZERO_ADDRESS == "0x" + "0" * 40 and type(ZERO_ADDRESS) is Address
    assert USD_ADDRESS == "usd"  # GMX's USD pseudo-asset: the one Address that is no 0x + 40 hex


@pytest.mark.parametrize("given", [CHECKSUMMED, LOWER, UPPER])
def test_config_accepts_checksummed_lower_and_upper_case_as_address(given):
    a = parse_address(given)
    assert type(a) is Address and a == LOWER
    acct = AccountConfig(address=given, kind="vault")
    assert type(acct.address) is Address and acct.address == LOWER and acct.acting_vault == LOWER


def test_config_refuses_a_bad_checksum_and_non_addresses():
    bad = CHECKSUMMED[:-1] + ("1" if CHECKSUMMED[-1] != "1" else "2")
    bad = bad[:3] + bad[3].swapcase() + bad[4:]  # mixed case that is not the checksum
    with pytest.raises(ValueError, match="bad EIP-55 checksum"):
        parse_address(bad)
    for value in ("0x1234", 12, None):
        with pytest.raises(ValueError, match="not an address"):
            parse_address(value)
    with pytest.raises(ValueError, match="bad EIP-55 checksum"):
        FeedConfig(address=CHECKSUMMED, second_source=bad)


def test_optional_config_addresses_stay_none_and_round_trip():
    feed = FeedConfig(address=UPPER)
    assert feed.asset is None and feed.second_source is None
    again = FeedConfig.model_validate(feed.model_dump())
    assert again == feed and type(again.address) is Address


def test_operators_read_the_checksum():
    assert shown_address(Address(LOWER)) == CHECKSUMMED == to_checksum_address(LOWER)
    assert shown_address("usd") == "usd" and shown_address("") == ""
