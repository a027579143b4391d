"""Aave v3's integer maths, reproduced exactly (``@aave/core-v3`` 1.19.3): WadRayMath, PercentageMath,
the reserve configuration bitmap and ``GenericLogic.calculateUserAccountData``'s health factor.

Pure: no chain access. ``health_factor`` is given the per-asset base-currency amounts the pool
would compute (``amount * price / 10**decimals``, floor) and returns what ``getUserAccountData``
returns as ``healthFactor``, to the wei."""

from __future__ import annotations

from dataclasses import dataclass

from keeper.domain import MAX_UINT256

RAY = 10**27
HALF_RAY = RAY // 2
WAD = 10**18
PERCENTAGE_FACTOR = 10_000
HALF_PERCENTAGE_FACTOR = PERCENTAGE_FACTOR // 2


def ray_mul(a: int, b: int) -> int:
    """WadRayMath.rayMul: half up. aToken / variableDebtToken ``balanceOf`` = rayMul(scaled, index)."""
    return (a * b + HALF_RAY) // RAY


def percent_mul(value: int, percentage: int) -> int:
    return (value * percentage + HALF_PERCENTAGE_FACTOR) // PERCENTAGE_FACTOR


def wad_div(a: int, b: int) -> int:
    return (a * WAD + b // 2) // b


@dataclass(frozen=True)
class ReserveConfig:
    """The fields of a ReserveConfigurationMap word the account maths uses."""
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


def to_base(amount: int, price: int, unit: int) -> int:
    """``amount * price / assetUnit`` (floor), as _getUserBalanceInBaseCurrency / _getUserDebtInBaseCurrency."""
    return amount * price // unit


def health_factor(total_collateral_base: int, weighted_threshold_sum: int, total_debt_base: int) -> int:
    """GenericLogic: avgLiquidationThreshold = Σ(collateral_base_i * LT_i) / Σ collateral_base_i (floor);
    HF = percentMul(total collateral, avg LT) wadDiv total debt; max uint256 without debt."""
    if total_debt_base == 0:
        return MAX_UINT256
    avg_lt = weighted_threshold_sum // total_collateral_base if total_collateral_base else 0
    return wad_div(percent_mul(total_collateral_base, avg_lt), total_debt_base)
