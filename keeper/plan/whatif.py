"""Pure "what if" for planned actions: the position as it would be once an action lands.

The health recomputed here is an *estimate* from the legs (lending: ``risk.health.lending_health``;
perps: the GMX v1 rule of ``risk.perp_math.perp_health`` in floats). The chain's exact answer comes
from the adapters (a fresh read, or the ``eth_call`` simulation before sending); the planner uses
this estimate only to size actions and to explain them.

Units: ``amount`` is in token units (floats) for lending legs; for perps a top-up is in the
collateral token's units (converted to USD at the asset's price, as GMX v1 books it) and a
withdrawal is a USD collateral delta. A top-up of a *long* pays GMX's deposit fee
(``PerpTerms.deposit_fee_bps``: PositionRouter's ``depositFee`` on collateral added with
``sizeDelta == 0``, ``PositionUtils.shouldDeductFee``), so it credits
``amount * price * (1 - deposit_fee_bps / 10000)``; shorts pay none, withdrawals none.

The searches that size an action on these estimates are in ``keeper.plan.sizing``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from keeper.domain import MAX_UINT256, WAD, ActionKind, Address, Asset, Leg, Position, Protocol, Side, evolved
from keeper.risk.health import lending_health

if TYPE_CHECKING:
    from keeper.plan.deleverage import DeleverageRoute
    from keeper.plan.perp_reduce import PerpReduceRoute

USD_RAW = 10**30  # GMX v1 USD unit: a perp withdrawal's amount_raw


@dataclass(frozen=True)
class AssetParams:
    """A reserve asset as the planner sees it.

    ``weights`` maps where the asset may be posted as collateral to its liquidation weight (Aave
    liquidation threshold / Morpho LLTV), looked up by position key, then ``"<protocol>:<market>"``,
    then ``"<protocol>"`` (see :func:`weight_for`; a Morpho market only takes its own collateral).
    ``haircut`` is the liquidity cost of using it (0.02 = every USD committed costs 1.02 USD)."""

    symbol: str
    address: Address
    decimals: int
    price_usd: float
    weights: Mapping[str, float] = field(default_factory=dict, hash=False)
    haircut: float = 0.0

    @property
    def asset(self) -> Asset:
        return Asset(self.symbol, self.address, self.decimals)

    @property
    def unit(self) -> int:
        unit: int = 10**self.decimals
        return unit


def weight_for(params: AssetParams, position: Position) -> float | None:
    """The asset's liquidation weight in ``position`` (an existing leg's weight first), or None
    when it cannot be posted there."""
    collateral = position.legs_on(Side.COLLATERAL)
    for leg in collateral:
        if leg.asset.address == params.address:
            return leg.liquidation_weight
    if position.protocol is Protocol.MORPHO_BLUE and collateral:
        return None  # a Morpho market has exactly one collateral token
    for k in (position.key, f"{position.protocol}:{position.market}".lower(), str(position.protocol)):
        if k in params.weights:
            return params.weights[k]
    return None


def perp_collateral_address(position: Position) -> Address:
    """The collateral token of a perp position (market key ``<collateral>:<index>:<side>``, built by the
    adapter from ``Address``es: taken as it is, not parsed again)."""
    return cast(Address, position.market.split(":")[0])


def _health_wad(h: float) -> int:
    if not math.isfinite(h):
        return MAX_UINT256
    return max(0, int(h * WAD))


def _perp_remaining(collateral_usd: float, size_usd: float, average_price: float, mark: float,
                    is_long: bool) -> float:
    """Collateral plus the unrealised PnL at ``mark`` (GMX v1's ``liquidatePosition`` adds a profit)."""
    move = (mark - average_price) / average_price if average_price > 0 else 0.0
    return collateral_usd + size_usd * move * (1.0 if is_long else -1.0)


def _perp_health_of(remaining: float, size_usd: float, margin_fees: float, liquidation_fee: float,
                    max_leverage: float) -> float:
    if remaining < margin_fees:
        return 0.0
    h = remaining * max_leverage / size_usd
    if liquidation_fee > 0:
        h = min(h, (remaining - margin_fees) / liquidation_fee)
    return h


def perp_health_estimate(collateral_usd: float, size_usd: float, average_price: float, mark: float,
                         is_long: bool, margin_fees: float, liquidation_fee: float, max_leverage: float) -> float:
    """``perp_math.perp_health`` in floats: 1.0 at the liquidation boundary (states 1 and 2).

    ``remaining`` = collateral + PnL at the mark (a profit counts);
    ``min(remaining * max_leverage / size, (remaining - margin_fees) / liquidation_fee)`` (the second
    term dropped without a liquidation fee), 0 when ``remaining < margin_fees``."""
    if size_usd <= 0:
        return math.inf
    remaining = _perp_remaining(collateral_usd, size_usd, average_price, mark, is_long)
    return _perp_health_of(remaining, size_usd, margin_fees, liquidation_fee, max_leverage)


def perp_top_up_usd(position: Position, params: AssetParams, amount_raw: int) -> float:
    """The USD collateral a perp top-up of ``amount_raw`` (base units of ``params``) is credited
    with: its value at ``params.price_usd``, less GMX's deposit fee on a long (see module doc)."""
    p = position.perp
    assert p is not None
    usd = amount_raw / params.unit * params.price_usd
    return usd * _deposit_fee_factor(p.is_long, p.deposit_fee_bps)


def _deposit_fee_factor(is_long: bool, deposit_fee_bps: int) -> float:
    """What a perp top-up keeps after GMX's deposit fee: longs only (``shouldDeductFee``)."""
    return 1.0 - deposit_fee_bps / 10_000 if is_long and deposit_fee_bps else 1.0


def _with_lending_leg(position: Position, params: AssetParams, side: Side, delta_raw: int) -> Position:
    legs, done = [], False
    addr = params.address
    for leg in position.legs:
        if not done and leg.side is side and leg.asset.address == addr:
            legs.append(evolved(leg, amount_raw=max(0, leg.amount_raw + delta_raw)))
            done = True
        else:
            legs.append(leg)
    if not done:
        if delta_raw < 0:
            raise ValueError(f"position holds no {params.symbol} {side} to reduce")
        w = weight_for(params, position) if side is Side.COLLATERAL else 1.0
        if w is None:
            raise ValueError(f"{params.symbol} is not collateral in {position.key}")
        legs.append(Leg(params.asset, side, delta_raw, params.price_usd, w))
    new = tuple(legs)
    return evolved(position, legs=new, health_wad=_health_wad(lending_health(new)))


def _with_perp_collateral(position: Position, delta_usd: float) -> Position:
    p = position.perp
    assert p is not None
    collateral = max(0.0, p.collateral_usd + delta_usd)
    terms = evolved(p, collateral_usd=collateral)
    h = perp_health_estimate(collateral, p.size_usd, p.average_price, p.mark_price, p.is_long,
                             p.margin_fees_usd, p.liquidation_fee_usd, p.max_leverage)
    terms = evolved(terms, liquidation_state=0 if h >= 1.0 else 1)
    legs = tuple(evolved(leg, amount_raw=max(0, leg.amount_raw + round(delta_usd * 10**leg.asset.decimals)))
                 if leg.side is Side.COLLATERAL else leg for leg in position.legs)
    return evolved(position, perp=terms, legs=legs, health_wad=_health_wad(h))


def simulate(position: Position, kind: ActionKind, params: AssetParams, amount_raw: int) -> Position:
    """The position once ``kind`` of ``amount_raw`` (base units of ``params``; a perp withdrawal:
    USD at 10**30 as GMX v1's ``collateralDelta``) lands. An estimate; see the module doc.

    REBALANCE is two halves: the source does ``WITHDRAW_EXCESS``, the target ``TOP_UP``."""
    if amount_raw < 0:
        raise ValueError("negative amount")
    if position.perp is not None:
        if kind is ActionKind.TOP_UP:
            return _with_perp_collateral(position, perp_top_up_usd(position, params, amount_raw))
        if kind is ActionKind.WITHDRAW_EXCESS:
            return _with_perp_collateral(position, -amount_raw / USD_RAW)
        raise ValueError(f"{kind} does not apply to a perp position")
    if kind is ActionKind.TOP_UP:
        return _with_lending_leg(position, params, Side.COLLATERAL, amount_raw)
    if kind is ActionKind.REPAY:
        return _with_lending_leg(position, params, Side.DEBT, -amount_raw)
    if kind is ActionKind.WITHDRAW_EXCESS:
        return _with_lending_leg(position, params, Side.COLLATERAL, -amount_raw)
    raise ValueError(f"simulate {kind} as its two halves")


def held(position: Position, params: AssetParams, side: Side) -> int:
    """Raw amount of ``params`` on ``side`` of a lending position."""
    addr = params.address
    return sum(leg.amount_raw for leg in position.legs if leg.side is side and leg.asset.address == addr)


# ------------------------------------------------------------------------------------ sizing
@dataclass(frozen=True)
class Sized:
    """One sized action on a position and the position it leaves."""

    kind: ActionKind
    params: AssetParams
    raw: int
    after: Position
    p_after: float
    # DELEVERAGE: how (``params`` is the debt asset repaid; a perp's reduction: its collateral token,
    # and ``raw`` the size taken off in USD at 1e30)
    route: DeleverageRoute | PerpReduceRoute | None = None

    @property
    def value_usd(self) -> float:
        if self.after.perp is not None and (self.kind is ActionKind.WITHDRAW_EXCESS or self.route is not None):
            return self.raw / USD_RAW  # a perp release is a USD collateral delta, a reduction a size delta
        return self.raw / self.params.unit * self.params.price_usd

    @property
    def cost_usd(self) -> float:
        return self.value_usd * (1 + self.params.haircut)

    def label(self) -> str:
        if self.route is not None:
            if self.after.perp is not None:
                return "reduce size"
            return f"deleverage {self.route.collateral.symbol} -> {self.params.symbol}"
        return f"{'repay' if self.kind is ActionKind.REPAY else 'add'} {self.params.symbol}"
