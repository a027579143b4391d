"""Which exact maths a pool needs, from its ``getRevision()`` (``POOL_REVISION``).

Revisions, from the sources: ``@aave/core-v3`` (v3.0.x) 1-3, aave-v3-origin v3.1.0 4, v3.2.0 5,
v3.2.1 6, v3.3.0 7, v3.4.0 8, v3.5.0 9, v3.6.0 10, v3.7.0 11. A revision outside this table is
refused: the keeper acts only on health it can reproduce, unless the operator chooses
``aave_v3.health = "pool"`` (``getUserAccountData`` for every account)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keeper.protocols.aave_v3 import maths as M


@dataclass(frozen=True)
class Family:
    name: str
    stable_debt: bool  # stable debt exists and is read per borrower (v3.0-3.1)
    emode_bitmaps: bool  # e-mode from category bitmaps and collateral configs, no price source (v3.2+)
    floor_ceil: bool  # v3.5 rounding and HF formula
    zero_lt_counts: bool  # an enabled collateral with reserve LT 0 still counts (v3.6+)

    @property
    def collateral_balance(self) -> Callable[[int, int], int]:
        return M.ray_mul_floor if self.floor_ceil else M.ray_mul

    @property
    def debt_balance(self) -> Callable[[int, int], int]:
        return M.ray_mul_ceil if self.floor_ceil else M.ray_mul

    @property
    def debt_to_base(self) -> Callable[[int, int, int], int]:
        return M.to_base_ceil if self.floor_ceil else M.to_base

    @property
    def health(self) -> Callable[[int, int, int], int]:
        return M.health_factor_v35 if self.floor_ceil else M.health_factor


V30 = Family("3.0-3.1", stable_debt=True, emode_bitmaps=False, floor_ceil=False, zero_lt_counts=False)
V32 = Family("3.2-3.4", stable_debt=False, emode_bitmaps=True, floor_ceil=False, zero_lt_counts=False)
V35 = Family("3.5", stable_debt=False, emode_bitmaps=True, floor_ceil=True, zero_lt_counts=False)
V36 = Family("3.6+", stable_debt=False, emode_bitmaps=True, floor_ceil=True, zero_lt_counts=True)

REVISIONS: dict[int, Family] = {1: V30, 2: V30, 3: V30, 4: V30, 5: V32, 6: V32, 7: V32, 8: V32, 9: V35,
                                10: V36, 11: V36}
# For a revision the keeper does not know, read with health = "pool": health, total collateral and
# debt come from getUserAccountData; the legs (amounts, e-mode thresholds) from the newest family
# whose getters the pool answers (LATEST, else V30; see metadata.choose_family). Those legs may be
# off by a wei of rounding: approximate by construction, and only the planner's what-ifs use them.
LATEST = V36


def family_for(revision: int) -> Family | None:
    return REVISIONS.get(revision)


def known_revisions() -> str:
    return ", ".join(f"{r} ({f.name})" for r, f in sorted(REVISIONS.items()))
