"""Liquidation maths per position kind: health from legs, liquidation price and distance.

Pure (no web3, no clock). Floats: this is for ranking, display and risk, not for calldata. The
exact health each protocol computes is read from the chain by the adapters (``Position.health_wad``);
``lending_health`` here recomputes it from the legs and agrees up to the protocols' integer rounding.

Lending (Aave v3, Morpho Blue): health = sum(collateral value * liquidation weight) / sum(debt value).
Moving one asset's price by a factor m (all else fixed) gives
    health(m) = (C_other + m * C_asset) / (D_other + m * D_asset)
so health = 1 at m* = (D_other - C_other) / (C_asset - D_asset). The liquidation price of that asset
is m* times its price. An asset whose fall cannot liquidate the position has no liquidation price.

Perps (GMX v1, ``VaultUtils.validateLiquidation`` as ``liquidatePosition`` runs it): the remaining
collateral is the collateral plus the unrealised PnL (a loss subtracted, a *profit added*), and the
position is liquidatable once it falls below
    T = max(marginFees + liquidationFee, size / maxLeverage)
— states 1 and 2 together (state 2 compares the remaining collateral itself, fees not subtracted,
with size / maxLeverage). The PnL is linear in the index price p:
    remaining(p) = collateral + sign * size * (p / avg - 1),   sign +1 long, -1 short,
so the liquidation price is, for a long
    p* = avg * (1 - (collateral - T) / size),   for a short   p* = avg * (1 + (collateral - T) / size)
on either side of the average price. Funding accrues over time and moves p* towards the mark; this
is the price at the fees read now. (GMX marks a long at the index's min price and a short at its
max; the floats here carry one mark. ``getDelta``'s min-profit rule, a small profit counting as 0
shortly after an increase, is not modelled: it matters only where p* lies on the profit side.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from keeper.domain import Leg, Position, Side


@dataclass(frozen=True)
class LiquidationPoint:
    """Where a position is liquidated if one asset's price moves alone."""

    symbol: str
    price: float  # the liquidation price of that asset, USD
    current: float  # its current price
    move: float  # signed relative move needed: -0.25 = a 25% fall, +0.10 = a 10% rise

    @property
    def distance(self) -> float:
        """The size of the move, as a fraction (0.25 = 25% away)."""
        return abs(self.move)


def lending_health(legs: tuple[Leg, ...]) -> float:
    weighted = sum(leg.value_usd * leg.liquidation_weight for leg in legs if leg.side is Side.COLLATERAL)
    debt = sum(leg.value_usd for leg in legs if leg.side is Side.DEBT)
    if debt <= 0:
        return math.inf
    return weighted / debt


def _lending_points(legs: tuple[Leg, ...]) -> list[LiquidationPoint]:
    weighted_total = sum(leg.value_usd * leg.liquidation_weight for leg in legs if leg.side is Side.COLLATERAL)
    debt_total = sum(leg.value_usd for leg in legs if leg.side is Side.DEBT)
    if debt_total <= 0:
        return []
    points = []
    for address in {leg.asset.address for leg in legs}:
        mine = [leg for leg in legs if leg.asset.address == address]
        c_asset = sum(leg.value_usd * leg.liquidation_weight for leg in mine if leg.side is Side.COLLATERAL)
        d_asset = sum(leg.value_usd for leg in mine if leg.side is Side.DEBT)
        denom = c_asset - d_asset
        if denom == 0:
            continue
        m = ((debt_total - d_asset) - (weighted_total - c_asset)) / denom
        if m <= 0 or not math.isfinite(m):
            continue  # no price of this asset alone liquidates the position
        # A collateral-heavy asset liquidates when it falls (m < 1 if healthy); a debt-heavy one when it rises.
        price = mine[0].price_usd
        points.append(LiquidationPoint(mine[0].asset.symbol, m * price, price, m - 1.0))
    return points


def perp_threshold(margin_fees: float, liquidation_fee: float, size: float, max_leverage: float) -> float:
    """The remaining collateral (USD) below which GMX v1 liquidates a position: the fees a
    liquidation charges plus its fixed fee, or the collateral the maximum leverage needs, whichever
    is more (``VaultUtils.validateLiquidation``; the one float form of it, used everywhere)."""
    return max(margin_fees + liquidation_fee, size / max_leverage)


def perp_liquidation_price(is_long: bool, size: float, collateral: float, average_price: float,
                           margin_fees: float, liquidation_fee: float, max_leverage: float) -> float:
    """The index price at which a GMX v1 position becomes liquidatable (see module doc): below it a
    long, above it a short, has ``remaining < max(margin_fees + liquidation_fee, size / max_leverage)``."""
    if size <= 0:
        return math.nan
    threshold = perp_threshold(margin_fees, liquidation_fee, size, max_leverage)
    slack = (collateral - threshold) / size
    return average_price * (1 - slack) if is_long else average_price * (1 + slack)


def liquidation_points(position: Position) -> list[LiquidationPoint]:
    """Every single-asset move that liquidates the position, nearest first."""
    if position.perp is not None:
        p = position.perp
        if p.size_usd <= 0:
            return []
        price = perp_liquidation_price(p.is_long, p.size_usd, p.collateral_usd, p.average_price,
                                       p.margin_fees_usd, p.liquidation_fee_usd, p.max_leverage)
        if price <= 0:
            return []  # a long whose collateral covers a fall to zero
        points = [LiquidationPoint(p.index.symbol, price, p.mark_price, price / p.mark_price - 1.0)]
    else:
        points = _lending_points(position.legs)
    return sorted(points, key=lambda pt: pt.distance)


def nearest_liquidation(position: Position) -> LiquidationPoint | None:
    """The headline distance to liquidation.

    Lending: every collateral price moving together, debt prices fixed, liquidates at the factor
    m = 1 / health (health is linear in the collateral prices), the textbook "distance to
    liquidation" of a health factor. It is quoted on the largest collateral asset: its price times
    m. (Single-asset moves, including a rise of a debt asset, are in ``liquidation_points``.)
    Perps: the index price at which the position becomes liquidatable."""
    if position.perp is not None:
        points = liquidation_points(position)
        return points[0] if points else None
    # One pass over the legs (this runs for every position of every read): the weighted collateral,
    # the debt, and the collateral that weighs most, as lending_health and value_usd compute them.
    weighted = debt = best = 0.0
    main = None
    for leg in position.legs:
        value = leg.amount_raw / 10**leg.asset.decimals * leg.price_usd
        if leg.side is Side.DEBT:
            debt += value
        elif leg.liquidation_weight > 0:
            w = value * leg.liquidation_weight
            weighted += w
            if main is None or w > best:
                main, best = leg, w
    if main is None or debt <= 0:
        return None
    health = weighted / debt
    if health <= 0:
        return None
    m = 1.0 / health
    return LiquidationPoint(main.asset.symbol, main.price_usd * m, main.price_usd, m - 1.0)
