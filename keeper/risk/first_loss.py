"""A position as its first loss sees it. A Morpho position whose borrower authorised a pre-liquidation
(``Position.preliq``) first loses collateral when its LTV passes the pre-liquidation's ``pre_lltv``
(a partial liquidation at a small incentive), before Morpho's own liquidation at the LLTV. The keeper's
P counts that first loss: every risk model sees the position with its collateral weighted at
``pre_lltv`` instead of the LLTV, so P is the probability of a pre-liquidation within the horizon; the
loss given it is the pre-liquidation's incentive on what it first repays (``first_loss_fraction``), not
Morpho's incentive on the whole debt. Health shown to the operator stays Morpho's.

An approximation, said where it is used: a pre-liquidation is assumed to happen as soon as it is
allowed (some pre-liquidator is watching) and to bring the position back into the band's safe side,
so a full liquidation after it is not counted (it needs a move across the whole band between two
oracle updates)."""

from __future__ import annotations

import math

from keeper.domain import MAX_UINT256, WAD, Position, Protocol, Side, evolved
from keeper.risk.health import lending_health


def first_loss_view(position: Position) -> Position:
    """``position`` with its collateral weighted at the authorised pre-liquidation's ``pre_lltv`` (itself
    when it has none): idempotent."""
    pre = position.preliq
    if pre is None or position.protocol is not Protocol.MORPHO_BLUE:
        return position
    legs = tuple(evolved(leg, liquidation_weight=pre.pre_lltv) if leg.side is Side.COLLATERAL else leg
                 for leg in position.legs)
    h = lending_health(legs)
    return evolved(position, legs=legs, health_wad=MAX_UINT256 if not math.isfinite(h) else max(0, int(h * WAD)))


def first_loss_fraction(position: Position) -> float | None:
    """Loss given the first loss per USD of debt, for a position with a pre-liquidation: its first
    incentive on its first close factor (``(pre_lif1 - 1) * pre_lcf1``); None without one."""
    pre = position.preliq
    if pre is None or position.protocol is not Protocol.MORPHO_BLUE:
        return None
    return (pre.pre_lif1 - 1.0) * pre.pre_lcf1
