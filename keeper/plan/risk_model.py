"""The forecast the planner sizes actions with: P(liquidation within the horizon) of one position.

The planner evaluates a position many times (bisection over amounts, for every candidate asset), so
the model must be cheap and deterministic: the analytic first-passage model by default. A Monte
Carlo or learned model can be plugged in behind the same protocol (wrapped so it is deterministic
for a given position, e.g. common random numbers)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol as TypingProtocol
from typing import runtime_checkable

from keeper.domain import Position, Side
from keeper.risk.probability import _first_passage_scalar, analytic_position_probability

HOURS_PER_YEAR = 24 * 365


@runtime_checkable
class RiskModel(TypingProtocol):
    def p_liq(self, position: Position) -> float:
        """P(liquidated within the horizon), in [0, 1]."""
        ...

    def describe(self) -> str:
        """Which forecast, for the reason attached to every action."""
        ...


@dataclass(frozen=True)
class AnalyticRisk:
    """``analytic_position_probability`` with horizon vols per symbol (symbols without a vol,
    stablecoins, are held fixed), scaled by ``tail_multiplier`` (>= 1 adds a margin for fat tails
    and jumps the lognormal walk misses) and capped at 1.

    ``comove``: the single-asset points alone reward diversification as if assets never moved
    together (adding WBTC to WETH collateral would look better than adding WETH). With it, a lending
    position whose debt is stable is also checked with all its volatile collateral moving as one
    (perfect correlation), at the weighted average of their vols: a first-passage to health 1 at
    ``log(1 / health)``. P is the larger of the two — conservative about correlation."""

    horizon_vols: Mapping[str, float] = field(hash=False)
    horizon_hours: float = 24.0
    tail_multiplier: float = 1.0
    drifts: Mapping[str, float] | None = field(default=None, hash=False)
    source: str = ""  # e.g. "GARCH-t forecast at block 123"
    comove: bool = True

    def __post_init__(self) -> None:
        if self.tail_multiplier < 1.0:
            raise ValueError("tail_multiplier must be >= 1 (it only adds margin)")
        if any(v < 0 or not math.isfinite(v) for v in self.horizon_vols.values()):
            raise ValueError("horizon vols must be finite and >= 0")

    @classmethod
    def from_annual(cls, annual_vols: Mapping[str, float], horizon_hours: float = 24.0,
                    tail_multiplier: float = 1.0, source: str = "") -> "AnalyticRisk":
        scale = math.sqrt(horizon_hours / HOURS_PER_YEAR)
        return cls({s: v * scale for s, v in annual_vols.items()}, horizon_hours, tail_multiplier,
                   None, source)

    def _comove(self, position: Position) -> float:
        vols = self.horizon_vols
        if position.perp is not None:
            return 0.0
        # One pass over the legs: the sums of ``lending_health`` and of the weighted vol, in leg order.
        weighted = debt = vol_sum = 0.0
        for l in position.legs:
            v = l.amount_raw / 10**l.asset.decimals * l.price_usd  # Leg.value_usd
            if l.side is Side.DEBT:
                if vols.get(l.asset.symbol, 0.0) > 0:
                    return 0.0
                debt += v
            else:
                w = v * l.liquidation_weight
                weighted += w
                vol_sum += w * vols.get(l.asset.symbol, 0.0)
        health = weighted / debt if debt > 0 else math.inf
        if not math.isfinite(health) or weighted <= 0:
            return 0.0
        if health <= 1.0:
            return 1.0
        vol = vol_sum / weighted
        return _first_passage_scalar(math.log(1.0 / health), vol, 0.0) if vol > 0 else 0.0

    def with_lead(self, hours: float) -> "AnalyticRisk":
        """The same model over ``horizon + hours`` (vols scaled by the square root of time): for
        positions whose protection lands ``hours`` after the keeper acts."""
        if hours <= 0:
            return self
        k = math.sqrt((self.horizon_hours + hours) / self.horizon_hours)
        return replace(self, horizon_vols={s: v * k for s, v in self.horizon_vols.items()},
                       horizon_hours=self.horizon_hours + hours)

    def p_liq(self, position: Position) -> float:
        p = analytic_position_probability(position, self.horizon_vols, self.drifts or None)
        if self.comove:
            p = max(p, self._comove(position))
        return min(1.0, self.tail_multiplier * p)

    def describe(self) -> str:
        vols = ", ".join(f"{s} {v:.2%}" for s, v in sorted(self.horizon_vols.items()))
        text = f"analytic first passage, {self.horizon_hours:g}h vols {vols or 'none'}"
        if self.tail_multiplier != 1.0:
            text += f", x{self.tail_multiplier:g} tail margin"
        if self.comove:
            text += ", co-moving collateral checked"
        return f"{text} ({self.source})" if self.source else text
