"""Aave v3's integer account maths, reproduced exactly per version family. Pure: no chain access.

What changed between the families (read off the pinned aave-v3-origin sources and the npm
``@aave/core-v3`` 1.19.3 artifacts, ``GenericLogic.calculateUserAccountData``):

- v3.0-3.1: balances ``rayMul`` (half up); base amounts ``amount * price / unit`` floored; stable
  debt added to variable debt; HF = ``percentMul(totalCollateral, floor(Σ b·LT / totalCollateral))
  .wadDiv(totalDebt)``; a collateral counts only when the reserve's own LT is non-zero.
- v3.2-3.4: the same rounding and HF; no stable debt; e-mode eligibility from the category's
  collateral bitmap (handled by the adapter, not here).
- v3.5: aToken balance ``rayMulFloor``, debt ``rayMulCeil``, debt in base currency
  ``mulDivCeil`` (rounded up), HF = ``(Σ b·LT).wadDiv(totalDebt) / 10_000`` (floor).
- v3.6+: as v3.5, and an enabled collateral counts even when the reserve's LT is zero (its LT,
  or the e-mode LT when the category's bitmap lists it, weighs it).

Every function returns what the Solidity returns, to the wei."""

from __future__ import annotations

from dataclasses import dataclass

from keeper.domain import MAX_UINT256

RAY = 10**27
HALF_RAY = RAY // 2
WAD = 10**18
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2


def ray_mul(a: int, b: int) -> int:
    """WadRayMath.rayMul: half up (v3.0-3.4 balances: ``balanceOf`` = rayMul(scaled, index))."""
    return (a * b + HALF_RAY) // RAY


def ray_mul_floor(a: int, b: int) -> int:
    """WadRayMath.rayMulFloor (v3.5+ aToken balances)."""
    return a * b // RAY


def ray_mul_ceil(a: int, b: int) -> int:
    """WadRayMath.rayMulCeil (v3.5+ variable debt balances)."""
    return -(-(a * b) // RAY)


def percent_mul(value: int, percentage: int) -> int:
    return (value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def wad_div(a: int, b: int) -> int:
    """WadRayMath.wadDiv: half up (the same in every version)."""
    return (a * WAD + b // 2) // b


def to_base(amount: int, price: int, unit: int) -> int:
    """``amount * price / assetUnit`` floored: collateral in every version, debt before v3.5."""
    return amount * price // unit


def to_base_ceil(amount: int, price: int, unit: int) -> int:
    """MathUtils.mulDivCeil: debt in base currency since v3.5."""
    return -(-(amount * price) // unit)


def health_factor(total_collateral_base: int, weighted_threshold_sum: int, total_debt_base: int) -> int:
    """v3.0-3.4: avgLT = Σ(collateral_base_i · LT_i) // Σ collateral_base_i;
    HF = percentMul(total collateral, avgLT) wadDiv total debt; max uint256 without debt."""
    if total_debt_base == 0:
        return MAX_UINT256
    avg_lt = weighted_threshold_sum // total_collateral_base if total_collateral_base else 0
    return wad_div(percent_mul(total_collateral_base, avg_lt), total_debt_base)


def health_factor_v35(total_collateral_base: int, weighted_threshold_sum: int, total_debt_base: int) -> int:
    """v3.5+: HF = (Σ collateral_base_i · LT_i).wadDiv(total debt) / 10_000 (floor)."""
    del total_collateral_base  # no longer part of the formula; kept for one signature per family
    if total_debt_base == 0:
        return MAX_UINT256
    return wad_div(weighted_threshold_sum, total_debt_base) // PERCENTAGE_FACTOR


@dataclass(frozen=True)
class ReserveConfig:
    """The fields of a ReserveConfigurationMap word the account maths uses. ``emode_category``
    (bits 168-175) is meaningful only before v3.2; since then it is always 0."""
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    decimals: int
    emode_category: int

    @classmethod
    def from_word(cls, w: int) -> ReserveConfig:
        return cls(w & 0xFFFF, (w >> 16) & 0xFFFF, (w >> 32) & 0xFFFF, (w >> 48) & 0xFF, (w >> 168) & 0xFF)


def is_borrowing(user_config: int, reserve_id: int) -> bool:
    return bool((user_config >> (2 * reserve_id)) & 1)


def is_using_as_collateral(user_config: int, reserve_id: int) -> bool:
    return bool((user_config >> (2 * reserve_id + 1)) & 1)


def in_bitmap(bitmap: int, reserve_id: int) -> bool:
    """EModeConfiguration.isReserveEnabledOnBitmap."""
    return bool((bitmap >> reserve_id) & 1)
