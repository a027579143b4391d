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


# How close the searches below get to the exact boundary: within 1 ppm of the amount (at least one
# raw unit). The answer is always on the safe side (a top-up never smaller than needed, a release
# never larger than allowed), so stopping early only costs up to 1 ppm of capital.
TOLERANCE_PPM = 1


def _score(p: float, target: float) -> float:
    """<= 0 exactly when P meets the target (``p <= target``, compared as is); otherwise
    continuous in P (log scale), for interpolation."""
    s = math.log(max(p, 1e-300)) - math.log(target)
    return min(s, 0.0) if p <= target else max(s, 1e-300)


def _narrow(f: Callable[[int], tuple[float, object]], good: int, bad: int, s_good: float, s_bad: float,
            payload: object) -> tuple[int, object]:
    """Shrink the bracket between a ``good`` amount (score <= 0) and a ``bad`` one (score > 0)
    until it is within ``TOLERANCE_PPM``; returns the last good amount and its payload.

    Each step interpolates the root of the score (false position) and then leans a little past it
    (1/1024 of the bracket, at least the tolerance), alternately toward the good and the bad end,
    so that with a good estimate both ends close in on the root; every fourth step, and whenever a score is not usable,
    bisects instead. ~10-20 evaluations instead of ~60 for plain integer bisection. The invariant
    (good stays good, bad stays bad) holds whatever the steps do."""
    step = 0
    while True:
        width = abs(good - bad)
        tol = max(1, abs(good) * TOLERANCE_PPM // 1_000_000)
        if width <= tol:
            return good, payload
        step += 1
        lo, hi = min(good, bad), max(good, bad)
        x = (lo + hi) // 2
        if step % 4 and s_bad > 0 >= s_good and math.isfinite(s_good) and math.isfinite(s_bad):
            x = bad + int((good - bad) * (s_bad / (s_bad - s_good)))
            lean = max(tol, width // 1024) * (1 if good > bad else -1)
            x += lean if step % 2 else -lean  # alternately just past each side of the estimate
            x = min(max(x, lo + 1), hi - 1)
        s, pay = f(x)
        if s <= 0:
            good, s_good, payload = x, s, pay
        else:
            bad, s_bad = x, s


def smallest_to_target(pos: Position, kind: ActionKind, params: AssetParams, p_liq: PFn,
                       target: float) -> Sized | None:
    """The least raw amount of a top-up/repayment with ``p_liq(after) <= target`` (None if no
    amount reaches it), rounded up: never below the exact least amount, at most ``TOLERANCE_PPM``
    above it. Assumes P does not rise with the amount (true for adding collateral or repaying debt)."""
    def f(x: int) -> tuple[float, object]:
        after = simulate(pos, kind, params, x)
        p = p_liq(after)
        return _score(p, target), (after, p)

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
            hi *= 8  # a wide bracket is cheap: _narrow interpolates
    s_hi, pay = f(hi)
    if s_hi > 0:
        return None
    s_lo, pay_lo = f(0)
    if s_lo <= 0:
        after, p = pay_lo  # type: ignore[misc]
        return Sized(kind, params, 0, after, p)
    x, (after, p) = _narrow(f, hi, 0, s_hi, s_lo, pay)  # type: ignore[misc]
    return Sized(kind, params, x, after, p)


def largest_withdrawal(pos: Position, params: AssetParams, p_liq: PFn, target: float,
                       floor: float) -> Sized | None:
    """The most that can leave ``pos`` in ``params`` (perps: USD at 1e30) with P at or below
    ``target`` and the estimated health at or above ``floor``; rounded down (at most
    ``TOLERANCE_PPM`` below the exact largest amount, never above it)."""

    def f(x: int) -> tuple[float, object]:
        after = simulate(pos, ActionKind.WITHDRAW_EXCESS, params, x)
        p = p_liq(after)
        below_floor = (floor - after.health) / floor if after.health < floor else -math.inf
        return max(_score(p, target), below_floor), (after, p)

    hi = int(pos.perp.collateral_usd * USD_RAW) if pos.perp else held(pos, params, Side.COLLATERAL)
    s_hi, pay = f(hi)
    if s_hi <= 0:
        after, p = pay  # type: ignore[misc]
        return Sized(ActionKind.WITHDRAW_EXCESS, params, hi, after, p)
    s_lo, pay_lo = f(0)
    if s_lo > 0 or hi <= 1:
        return None
    x, (after, p) = _narrow(f, 0, hi, s_lo, s_hi, pay_lo)  # type: ignore[misc]
    if x == 0:
        return None
    return Sized(ActionKind.WITHDRAW_EXCESS, params, x, after, p)
