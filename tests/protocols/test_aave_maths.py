"""Aave v3's integer maths per version family, against hand-worked values of the Solidity
(``WadRayMath``, ``MathUtils.mulDivCeil``, ``GenericLogic``'s two health formulas): pure, no chain."""

from hypothesis import given
from hypothesis import strategies as st

from keeper.domain import MAX_UINT256
from keeper.protocols.aave_v3 import REVISIONS, family_for
from keeper.protocols.aave_v3.families import V30, V32, V35, V36
from keeper.protocols.aave_v3.maths import (
    RAY,
    ReserveConfig,
    health_factor,
    health_factor_v35,
    in_bitmap,
    percent_mul,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    to_base,
    to_base_ceil,
    wad_div,
)


def test_rounding_of_each_primitive():
    assert ray_mul(3, RAY // 2) == 2  # 1.5 rounds half up
    assert ray_mul_floor(3, RAY // 2) == 1 and ray_mul_ceil(3, RAY // 2) == 2
    assert ray_mul_floor(4, RAY // 2) == ray_mul_ceil(4, RAY // 2) == 2  # exact: no rounding either way
    assert percent_mul(1, 5_000) == 1 and percent_mul(1, 4_999) == 0
    assert wad_div(1, 3) == 333_333_333_333_333_333
    assert to_base(10, 3, 4) == 7 and to_base_ceil(10, 3, 4) == 8 and to_base_ceil(8, 3, 4) == 6


def test_health_formulas_v30_and_v35_differ_in_the_last_digits():
    # Two collaterals (LT 82.5% and 75%) and a debt, in 8-decimal base units.
    coll = [2_000_000_000_01, 1_500_000_000_07]
    lts = [8_250, 7_500]
    total = sum(coll)
    weighted = sum(c * lt for c, lt in zip(coll, lts))
    debt = 2_000_000_000_03
    v30 = health_factor(total, weighted, debt)
    v35 = health_factor_v35(total, weighted, debt)
    assert v30 == wad_div(percent_mul(total, weighted // total), debt)
    assert v35 == wad_div(weighted, debt) // 10_000
    assert v30 != v35 and abs(v30 - v35) < 10**15  # same health to 3 decimals, not to the wei
    for f in (health_factor, health_factor_v35):
        assert f(0, 0, 0) == MAX_UINT256 and f(100, 800_000, 0) == MAX_UINT256 and f(0, 0, 5) == 0


@given(st.integers(0, 10**30), st.integers(RAY, 3 * RAY))
def test_floor_and_ceil_bracket_half_up(scaled, index):
    lo, mid, hi = ray_mul_floor(scaled, index), ray_mul(scaled, index), ray_mul_ceil(scaled, index)
    assert lo <= mid <= hi <= lo + 1


def test_revision_table_covers_every_released_family():
    assert {r: f.name for r, f in REVISIONS.items()} == {
        1: "3.0-3.1", 2: "3.0-3.1", 3: "3.0-3.1", 4: "3.0-3.1", 5: "3.2-3.4", 6: "3.2-3.4", 7: "3.2-3.4",
        8: "3.2-3.4", 9: "3.5", 10: "3.6+", 11: "3.6+"}
    assert family_for(12) is None and family_for(0) is None
    assert V30.stable_debt and not V32.stable_debt and V32.emode_bitmaps and not V30.emode_bitmaps
    assert V30.health is health_factor and V32.health is health_factor and V35.health is health_factor_v35
    assert V35.collateral_balance is ray_mul_floor and V35.debt_balance is ray_mul_ceil
    assert V35.debt_to_base is to_base_ceil and V32.debt_to_base is to_base
    assert V36.zero_lt_counts and not V35.zero_lt_counts


def test_reserve_config_word_and_bitmaps():
    w = 8_000 | (8_250 << 16) | (10_500 << 32) | (18 << 48) | (3 << 168)
    assert ReserveConfig.from_word(w) == ReserveConfig(8_000, 8_250, 10_500, 18, 3)
    assert in_bitmap(0b101, 0) and not in_bitmap(0b101, 1) and in_bitmap(0b101, 2)
