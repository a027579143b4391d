"""``keeper.domain.evolved``: the planner's fast ``dataclasses.replace`` gives what ``replace`` gives
for the domain's frozen dataclasses. Pure, no chain."""

from __future__ import annotations

import dataclasses

import pytest

from keeper.domain import WAD, Address, Asset, Leg, PerpTerms, Position, Protocol, Side, evolved

WETH = Asset(Address("0x" + "11" * 20), "WETH", 18)
USDC = Asset(Address("0x" + "33" * 20), "USDC", 6)


def position() -> Position:
    legs = (Leg(WETH, Side.COLLATERAL, 10 * 10**18, 1_700.0, 0.83), Leg(USDC, Side.DEBT, 13_000 * 10**6, 1.0, 1.0))
    return Position("devnet", Protocol.AAVE_V3, Address("0x" + "44" * 20), Address("0x" + "55" * 20), "pool", legs,
                    WAD, 100)


def test_equals_replace_and_leaves_the_original_alone():
    p = position()
    legs = (dataclasses.replace(p.legs[0], amount_raw=11 * 10**18), p.legs[1])
    new = evolved(p, legs=legs, health_wad=2 * WAD)
    assert new == dataclasses.replace(p, legs=legs, health_wad=2 * WAD)
    assert type(new) is Position and new is not p
    assert p.health_wad == WAD and p.legs[0].amount_raw == 10 * 10**18  # the original is unchanged
    assert evolved(p.legs[0], amount_raw=1) == dataclasses.replace(p.legs[0], amount_raw=1)
    assert hash(new) == hash(dataclasses.replace(p, legs=legs, health_wad=2 * WAD))  # frozen: hashable alike


def test_still_frozen_and_unknown_fields_raise():
    new = evolved(position(), health_wad=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        new.health_wad = 4  # type: ignore[misc]
    with pytest.raises(TypeError, match="Position has no field 'health'"):
        evolved(position(), health=2.0)


def test_the_domain_classes_it_serves_have_no_post_init():
    # evolved copies fields without running __init__: a __post_init__ added later would be skipped
    for cls in (Position, Leg, PerpTerms):
        assert not hasattr(cls, "__post_init__"), f"{cls.__name__} gained __post_init__: evolved() would skip it"
