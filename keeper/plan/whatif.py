"""Pure "what if" for planned actions: the position as it would be once an action lands.

The health recomputed here is an *estimate* from the legs (lending: ``risk.health.lending_health``;
perps: the GMX v1 rule of ``risk.perp_math.perp_health`` in floats). The chain's exact answer comes
from the adapters (a fresh read, or the ``eth_call`` simulation before sending); the planner uses
this estimate only to size actions and to explain them.

Units: ``amount`` is in token units (floats) for lending legs; for perps a top-up is in the
collateral token's units (converted to USD at the asset's price, as GMX v1 books it) and a
withdrawal is a USD collateral delta.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from keeper.domain import MAX_UINT256, WAD, ActionKind, Asset, Leg, Position, Protocol, Side
from keeper.risk.health import lending_health

USD_RAW = 10**30  # GMX v1 USD unit: a perp withdrawal's amount_raw


@dataclass(frozen=True)
class AssetParams:
    """A reserve asset as the planner sees it.

    ``weights`` maps where the asset may be posted as collateral to its liquidation weight (Aave
    liquidation threshold / Morpho LLTV), looked up by position key, then ``"<protocol>:<market>"``,
    then ``"<protocol>"`` (see :func:`weight_for`; a Morpho market only takes its own collateral).
    ``haircut`` is the liquidity cost of using it (0.02 = every USD committed costs 1.02 USD)."""

    symbol: str
    address: str
    decimals: int
    price_usd: float
    weights: Mapping[str, float] = field(default_factory=dict, hash=False)
    haircut: float = 0.0

    @property
    def asset(self) -> Asset:
        return Asset(self.symbol, self.address, self.decimals)

    @property
    def unit(self) -> int:
        return 10**self.decimals


def weight_for(params: AssetParams, position: Position) -> float | None:
    """The asset's liquidation weight in ``position`` (an existing leg's weight first), or None
    when it cannot be posted there."""
    collateral = position.legs_on(Side.COLLATERAL)
    for leg in collateral:
        if leg.asset.address.lower() == params.address.lower():
            return leg.liquidation_weight
    if position.protocol is Protocol.MORPHO_BLUE and collateral:
        return None  # a Morpho market has exactly one collateral token
    for k in (position.key, f"{position.protocol}:{position.market}".lower(), str(position.protocol)):
        if k in params.weights:
            return params.weights[k]
    return None


def perp_collateral_address(position: Position) -> str:
    """The collateral token of a perp position (market key ``<collateral>:<index>:<side>``)."""
    return position.market.split(":")[0].lower()


def _health_wad(h: float) -> int:
    if not math.isfinite(h):
        return MAX_UINT256
    return max(0, int(h * WAD))


def perp_health_estimate(collateral_usd: float, size_usd: float, average_price: float, mark: float,
                         is_long: bool, margin_fees: float, liquidation_fee: float, max_leverage: float) -> float:
    """``perp_math.perp_health`` in floats: 1.0 at the liquidation boundary (states 1 and 2)."""
    if size_usd <= 0:
        return math.inf
    move = (mark - average_price) / average_price if average_price > 0 else 0.0
    pnl = size_usd * move * (1.0 if is_long else -1.0)
    remaining = collateral_usd + min(pnl, 0.0)  # profit does not count (GMX v1)
    backing = remaining - margin_fees
    if backing <= 0:
        return 0.0
    h = backing * max_leverage / size_usd
    if liquidation_fee > 0:
        h = min(h, backing / liquidation_fee)
    return h


def _with_lending_leg(position: Position, params: AssetParams, side: Side, delta_raw: int) -> Position:
    legs, done = [], False
    addr = params.address.lower()
    for leg in position.legs:
        if not done and leg.side is side and leg.asset.address.lower() == addr:
            legs.append(replace(leg, amount_raw=max(0, leg.amount_raw + delta_raw)))
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
    return replace(position, legs=new, health_wad=_health_wad(lending_health(new)))


def _with_perp_collateral(position: Position, delta_usd: float) -> Position:
    p = position.perp
    assert p is not None
    collateral = max(0.0, p.collateral_usd + delta_usd)
    terms = replace(p, collateral_usd=collateral)
    h = perp_health_estimate(collateral, p.size_usd, p.average_price, p.mark_price, p.is_long,
                             p.margin_fees_usd, p.liquidation_fee_usd, p.max_leverage)
    terms = replace(terms, liquidation_state=0 if h >= 1.0 else 1)
    legs = tuple(replace(l, amount_raw=max(0, l.amount_raw + round(delta_usd * 10**l.asset.decimals)))
                 if l.side is Side.COLLATERAL else l for l in position.legs)
    return replace(position, perp=terms, legs=legs, health_wad=_health_wad(h))


def simulate(position: Position, kind: ActionKind, params: AssetParams, amount_raw: int) -> Position:
    """The position once ``kind`` of ``amount_raw`` (base units of ``params``; a perp withdrawal:
    USD at 10**30 as GMX v1's ``collateralDelta``) lands. An estimate; see the module doc.

    REBALANCE is two halves: the source does ``WITHDRAW_EXCESS``, the target ``TOP_UP``."""
    if amount_raw < 0:
        raise ValueError("negative amount")
    if position.perp is not None:
        if kind is ActionKind.TOP_UP:
            return _with_perp_collateral(position, amount_raw / params.unit * params.price_usd)
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
    addr = params.address.lower()
    return sum(l.amount_raw for l in position.legs if l.side is side and l.asset.address.lower() == addr)


# ------------------------------------------------------------------------------------ sizing
@dataclass(frozen=True)
class Sized:
    """One sized action on a position and the position it leaves."""

    kind: ActionKind
    params: AssetParams
    raw: int
    after: Position
    p_after: float

    @property
    def value_usd(self) -> float:
        if self.kind is ActionKind.WITHDRAW_EXCESS and self.after.perp is not None:
            return self.raw / USD_RAW  # a perp release is a USD collateral delta
        return self.raw / self.params.unit * self.params.price_usd

    @property
    def cost_usd(self) -> float:
        return self.value_usd * (1 + self.params.haircut)

    def label(self) -> str:
        return f"{'repay' if self.kind is ActionKind.REPAY else 'add'} {self.params.symbol}"


PFn = Callable[[Position], float]


def smallest_to_target(pos: Position, kind: ActionKind, params: AssetParams, p_liq: PFn,
                       target: float) -> Sized | None:
    """The least raw amount of a top-up/repayment with ``p_liq(after) <= target`` (None if no
    amount reaches it): integer bisection, so the answer is rounded up by construction. Assumes
    P does not rise with the amount (true for adding collateral or repaying debt)."""
    if kind is ActionKind.REPAY:
        hi = held(pos, params, Side.DEBT)
        if hi <= 0:
            return None
    else:
        cap = 1e4 * (pos.collateral_usd + pos.debt_usd) + 1e6  # USD: beyond this, give up
        hi = max(1, params.unit // 1000)
        while p_liq(simulate(pos, kind, params, hi)) > target:
            if hi / params.unit * params.price_usd > cap:
                return None
            hi *= 2
    after = simulate(pos, kind, params, hi)
    p_hi = p_liq(after)
    if p_hi > target:
        return None
    lo = 0  # invariant: lo misses the target, hi reaches it
    while hi - lo > 1:
        mid = (lo + hi) // 2
        cand = simulate(pos, kind, params, mid)
        p = p_liq(cand)
        if p <= target:
            hi, after, p_hi = mid, cand, p
        else:
            lo = mid
    return Sized(kind, params, hi, after, p_hi)


def largest_withdrawal(pos: Position, params: AssetParams, p_liq: PFn, target: float,
                       floor: float) -> Sized | None:
    """The most that can leave ``pos`` in ``params`` (perps: USD at 1e30) with P at or below
    ``target`` and the estimated health at or above ``floor``; rounded down by construction."""

    def ok(x: int) -> tuple[bool, Position, float]:
        after = simulate(pos, ActionKind.WITHDRAW_EXCESS, params, x)
        if after.health < floor:
            return False, after, 1.0
        p = p_liq(after)
        return p <= target, after, p

    hi = int(pos.perp.collateral_usd * USD_RAW) if pos.perp else held(pos, params, Side.COLLATERAL)
    good, after, p = ok(hi)
    if good:
        return Sized(ActionKind.WITHDRAW_EXCESS, params, hi, after, p)
    lo, best = 0, None  # invariant: lo keeps the rules, hi breaks them
    while hi - lo > 1:
        mid = (lo + hi) // 2
        good, cand, pc = ok(mid)
        if good:
            lo, best = mid, (cand, pc)
        else:
            hi = mid
    if best is None:
        return None
    return Sized(ActionKind.WITHDRAW_EXCESS, params, lo, best[0], best[1])
