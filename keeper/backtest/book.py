"""Simulated positions for the backtester: lending (Aave-style multi-collateral, Morpho-style LLTV
market) and isolated-margin perps (GMX v1 semantics).

Every position speaks one small language the engine and the policies use:

- ``distance(px)``: the fractional adverse move of its prices that reaches liquidation
  (lending: all collateral prices falling together against the debt, ``1 - 1/health``, the
  convention of ``keeper.risk.health.nearest_liquidation``; perps: the index move to the
  liquidation price),
- ``breached(lo, hi)``: whether the bar's extremes (collateral at its low, a volatile debt asset or
  a short's index at its high) crossed liquidation,
- ``liquidate(lo, hi)``: apply the protocol's liquidation and return the penalty lost (USD),
- ``size_to_distance(d, px)``: the collateral (in units of the top-up asset) to add (> 0) or
  withdraw (< 0) so the position sits at distance ``d``; ``apply(units, px)`` does it,
- ``buffer_usd(px)`` and ``debt_usd(px)``: collateral value above the liquidation point, and debt.

Prices are dicts ``symbol -> price``. Floats (USD, token units): this is simulation, not calldata.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from keeper.risk.health import perp_liquidation_price, perp_threshold


@dataclass
class LendingPosition:
    """Aave v3-style: several collateral assets each with a liquidation threshold, one debt asset.

    ``debt_symbol=None`` is a USD stablecoin debt (price 1). Liquidation (Aave v3): once health < 1
    a liquidator repays ``close_factor`` of the debt (all of it when health <= 0.95) and seizes
    collateral worth the repaid amount times ``1 + penalty`` at the prices of that moment (taken at
    the liquidation point, or at the bar's extreme if the bar gapped through it)."""

    collateral: dict[str, float]            # symbol -> units
    thresholds: dict[str, float]            # symbol -> liquidation threshold (LT or LLTV)
    debt: float                             # units of the debt asset
    debt_symbol: str | None = None
    penalty: float = 0.05                   # liquidation bonus paid to the liquidator
    close_factor: float = 0.5
    full_close_below: float = 0.95
    topup_symbol: str = ""                  # asset the keeper tops up / withdraws (default: largest)
    closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if not self.topup_symbol:
            self.topup_symbol = next(iter(self.collateral))

    # --- valuation -----------------------------------------------------------------------------
    def _debt_price(self, px: dict[str, float]) -> float:
        return 1.0 if self.debt_symbol is None else px[self.debt_symbol]

    def debt_usd(self, px: dict[str, float]) -> float:
        return self.debt * self._debt_price(px)

    def weighted_usd(self, px: dict[str, float]) -> float:
        return sum(q * px[s] * self.thresholds[s] for s, q in self.collateral.items())

    def collateral_usd(self, px: dict[str, float]) -> float:
        return sum(q * px[s] for s, q in self.collateral.items())

    def health(self, px: dict[str, float]) -> float:
        d = self.debt_usd(px)
        return math.inf if d <= 0 else self.weighted_usd(px) / d

    def distance(self, px: dict[str, float]) -> float:
        h = self.health(px)
        return 1.0 if not math.isfinite(h) else 1.0 - 1.0 / h

    def buffer_usd(self, px: dict[str, float]) -> float:
        """Collateral value above the liquidation point: C * (1 - 1/health)."""
        return self.collateral_usd(px) * self.distance(px)

    # --- liquidation ---------------------------------------------------------------------------
    def _stress(self, lo: dict[str, float], hi: dict[str, float]) -> dict[str, float]:
        px = dict(lo)
        if self.debt_symbol is not None:
            px[self.debt_symbol] = hi[self.debt_symbol]
        return px

    def breached(self, lo: dict[str, float], hi: dict[str, float]) -> bool:
        return not self.closed and self.debt > 0 and self.health(self._stress(lo, hi)) < 1.0

    def liquidate(self, lo: dict[str, float], hi: dict[str, float]) -> float:
        px = self._stress(lo, hi)
        h = self.health(px)
        share = 1.0 if h <= self.full_close_below else self.close_factor
        repaid_usd = self.debt_usd(px) * share
        seize_usd = repaid_usd * (1.0 + self.penalty)
        total = self.collateral_usd(px)
        seize_usd = min(seize_usd, total)
        frac = seize_usd / total if total > 0 else 1.0
        self.collateral = {s: q * (1.0 - frac) for s, q in self.collateral.items()}
        self.debt *= 1.0 - share
        if self.debt <= 0 or sum(self.collateral.values()) <= 0:
            self.closed = True
        return seize_usd - repaid_usd

    # --- keeper actions ------------------------------------------------------------------------
    def size_to_distance(self, d: float, px: dict[str, float]) -> float:
        """Units of ``topup_symbol`` to add (withdraw if negative) so that distance == d."""
        need_weighted = self.debt_usd(px) / (1.0 - d)
        s = self.topup_symbol
        units = (need_weighted - self.weighted_usd(px)) / (px[s] * self.thresholds[s])
        return max(units, -self.collateral.get(s, 0.0))

    def apply(self, units: float, px: dict[str, float]) -> float:
        """Move ``units`` of the top-up asset in (> 0) or out; returns the USD moved."""
        s = self.topup_symbol
        units = max(units, -self.collateral.get(s, 0.0))
        self.collateral[s] = self.collateral.get(s, 0.0) + units
        return units * px[s]


def morpho_market(collateral_symbol: str, collateral: float, debt: float, lltv: float,
                  debt_symbol: str | None = None) -> LendingPosition:
    """A Morpho Blue LLTV market: one collateral, full liquidation allowed, incentive
    min(1.15, 1 / (1 - 0.3 * (1 - LLTV)))."""
    incentive = min(1.15, 1.0 / (1.0 - 0.3 * (1.0 - lltv)))
    return LendingPosition({collateral_symbol: collateral}, {collateral_symbol: lltv}, debt, debt_symbol,
                           penalty=incentive - 1.0, close_factor=1.0, full_close_below=1.0)


@dataclass
class PerpPosition:
    """GMX v1 isolated-margin perp. Liquidatable when the remaining collateral (collateral minus the
    loss, or plus the profit) falls below ``max(margin fees + liquidation_fee, size / max_leverage)``
    (``VaultUtils.validateLiquidation`` as ``liquidatePosition`` runs it; margin fees = closing fee
    plus funding).
    Liquidation loses the whole remaining collateral (the penalty returned). Funding accrues per
    hour on the size (``funding_per_hour``, a fraction) via :meth:`accrue`."""

    symbol: str
    is_long: bool
    size_usd: float
    collateral_usd: float
    average_price: float
    margin_fee_bps: float = 10.0
    liquidation_fee_usd: float = 5.0
    max_leverage: float = 50.0
    funding_per_hour: float = 0.0
    funding_usd: float = 0.0
    closed: bool = field(default=False, init=False)
    topup_symbol: str = "USD"

    def accrue(self, hours: float) -> None:
        self.funding_usd += self.size_usd * self.funding_per_hour * hours

    def _fees(self) -> float:
        return self.size_usd * self.margin_fee_bps / 1e4 + self.funding_usd

    def liquidation_price(self) -> float:
        return perp_liquidation_price(self.is_long, self.size_usd, self.collateral_usd, self.average_price,
                                      self._fees(), self.liquidation_fee_usd, self.max_leverage)

    def distance(self, px: dict[str, float]) -> float:
        p, liq = px[self.symbol], self.liquidation_price()
        if self.is_long:
            return 1.0 if liq <= 0 else 1.0 - liq / p
        return liq / p - 1.0

    def debt_usd(self, px: dict[str, float]) -> float:
        return self.size_usd

    def buffer_usd(self, px: dict[str, float]) -> float:
        """Remaining collateral above the liquidation threshold."""
        p = px[self.symbol]
        pnl = self.size_usd * (p / self.average_price - 1.0) * (1 if self.is_long else -1)
        return self.collateral_usd + pnl - self._threshold()

    def _threshold(self) -> float:
        """The remaining collateral below which GMX v1 liquidates."""
        return perp_threshold(self._fees(), self.liquidation_fee_usd, self.size_usd, self.max_leverage)

    def breached(self, lo: dict[str, float], hi: dict[str, float]) -> bool:
        if self.closed:
            return False
        liq = self.liquidation_price()
        return lo[self.symbol] <= liq if self.is_long else hi[self.symbol] >= liq

    def liquidate(self, lo: dict[str, float], hi: dict[str, float]) -> float:
        lost = self.collateral_usd
        self.closed = True
        self.collateral_usd = 0.0
        return lost

    def size_to_distance(self, d: float, px: dict[str, float]) -> float:
        p = px[self.symbol]
        threshold = self._threshold()
        target_liq = p * (1.0 - d) if self.is_long else p * (1.0 + d)
        move = (1.0 - target_liq / self.average_price) if self.is_long else (target_liq / self.average_price - 1.0)
        need = threshold + self.size_usd * move
        return max(need - self.collateral_usd, -self.collateral_usd)

    def apply(self, units: float, px: dict[str, float]) -> float:
        units = max(units, -self.collateral_usd)
        self.collateral_usd += units
        return units
