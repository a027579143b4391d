"""Deleverage of a GMX v1 perp as the planner sees it: take size off the position, its collateral left
in place (``KeeperVault.reducePerp``: at once while the GMX Vault's leverage is on, else a
PositionRouter decrease request that GMX's position keepers execute a block or more later). Pure: the
route's figures (the vault's caps, GMX's fee, the request's execution fee, gas) are read by the app
layer.

What GMX v1 does (``Vault._reduceCollateral`` with ``collateralDelta`` 0), and so the estimate here:
the reduced share of the PnL is realised (a loss comes out of the collateral, a profit goes to the
vault), and the fee is the margin fee on the size taken off plus the position's whole funding fee,
taken from what goes out when that covers it, else from the collateral. The average price stays.
The funding fee is not read on its own: it is the position's ``margin_fees_usd`` (funding plus the
closing fee at ``fee_bps``) less that closing fee, exact when ``fee_bps`` is the fee the position's
liquidation check runs with (gated GMX: the executions' fee; direct: the Vault's).

Cost: the margin fee on the size taken off, the request's execution fee (gated) and the gas. What it
does not count: the exposure the owner gives up (a reduction is a choice the owner makes by setting
the caps on the GMX Vault's address; nothing is reduced without them)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from keeper.domain import MAX_UINT256, Address, Position, Side, evolved
from keeper.plan.whatif import USD_RAW, AssetParams, _health_wad, _perp_remaining, perp_health_estimate

# How finely ``PerpReduceAxis.x`` inverts ``t`` (bisection steps over the position's size): far finer
# than the sizing search's own tolerance.
_BISECT_STEPS = 60


@dataclass(frozen=True)
class PerpReduceRoute:
    """How one vault can deleverage one perp: by size, within its caps, at GMX's fees."""

    collateral: AssetParams  # the position's collateral token: the action's asset
    perp_vault: Address  # the GMX Vault: the key of the vault's caps on size taken off
    fee_bps: int  # GMX's margin fee on the size taken off (inside executions; direct mode: the Vault's)
    cap_raw: int  # the size (USD at 1e30) the vault's caps still let it take off now
    execution_fee_usd: float = 0.0  # gated: the PositionRouter request's execution fee
    gas_usd: float = 0.0
    gated: bool = False  # a PositionRouter request (lands later) rather than at once

    @property
    def params(self) -> AssetParams:
        return self.collateral

    def loss_usd(self, raw: int) -> float:
        """GMX's margin fee on ``raw`` of size taken off, and the request's execution fee (gas apart)."""
        return raw / USD_RAW * self.fee_bps / 10_000 + self.execution_fee_usd

    def largest_raw(self, position: Position) -> int:
        """The most size one reduction can take off now: the position's size (rounded down, the
        contract refuses more than there is), within the caps."""
        p = position.perp
        if p is None or p.size_usd <= 0:
            return 0
        return max(0, min(math.floor(p.size_usd * USD_RAW * (1 - 1e-12)), self.cap_raw))

    def cap_use(self, raw: int) -> tuple[Address, int]:
        """What ``raw`` takes of the vault's caps, and under which key."""
        return self.perp_vault, raw

    def simulate(self, position: Position, raw: int) -> Position:
        return simulate_reduce(position, self, raw)


def reduced_terms(position: Position, fee_bps: int, raw: float) -> tuple[float, float, float]:
    """(size, collateral, margin fees) in USD once ``raw`` (USD at 1e30) of size is taken off (see the
    module doc); a full close leaves (0, 0, 0)."""
    p = position.perp
    assert p is not None
    d = raw / USD_RAW
    if d >= p.size_usd:
        return 0.0, 0.0, 0.0
    rate = fee_bps / 10_000
    funding = max(0.0, p.margin_fees_usd - p.size_usd * rate)
    charge = d * rate + funding
    share = _perp_remaining(0.0, p.size_usd, p.average_price, p.mark_price, p.is_long) * d / p.size_usd
    collateral = p.collateral_usd
    out = 0.0
    if share < 0:
        collateral += share
    else:
        out = share
    if not out > charge:
        collateral -= charge
    size = p.size_usd - d
    return size, max(0.0, collateral), size * rate


def simulate_reduce(position: Position, route: PerpReduceRoute, raw: int) -> Position:
    """The perp once ``raw`` (USD at 1e30) of its size is taken off (an estimate, as ``whatif.simulate``)."""
    if raw < 0:
        raise ValueError("negative amount")
    p = position.perp
    if p is None:
        raise ValueError("only a perp position is reduced by size")
    size, collateral, fees = reduced_terms(position, route.fee_bps, raw)
    if size <= 0:
        h, state = math.inf, 0
    else:
        h = perp_health_estimate(collateral, size, p.average_price, p.mark_price, p.is_long, fees,
                                 p.liquidation_fee_usd, p.max_leverage)
        state = 0 if h >= 1.0 else 1
    terms = evolved(p, size_usd=size, collateral_usd=collateral, margin_fees_usd=fees, liquidation_state=state)
    legs = tuple(evolved(leg, amount_raw=max(0, round(collateral * 10**leg.asset.decimals)))
                 if leg.side is Side.COLLATERAL else leg for leg in position.legs)
    return evolved(position, perp=terms, legs=legs, health_wad=MAX_UINT256 if size <= 0 else _health_wad(h))


@dataclass(frozen=True)
class PerpReduceAxis:
    """What the sizing search interpolates against for a reduction: ``t`` = the log move of the index
    from the mark to the liquidation price once ``x`` raw of size is off (as ``sizing._PerpBarrier``);
    ``x(t)`` by bisection (``t`` rises with ``x`` while the reduction lowers the leverage; +inf once no
    fall of the index can liquidate a long)."""

    position: Position
    fee_bps: int
    hi: float  # the largest amount searched

    def t(self, x: float) -> float:
        p = self.position.perp
        assert p is not None
        size, collateral, fees = reduced_terms(self.position, self.fee_bps, max(0.0, x))
        if size <= 0 or p.max_leverage <= 0 or p.average_price <= 0 or p.mark_price <= 0:
            return math.nan
        threshold = max(fees + p.liquidation_fee_usd, size / p.max_leverage)
        move = (collateral - threshold) / size
        price = p.average_price * (1 - move if p.is_long else 1 + move)
        if price <= 0:
            return math.inf  # a long that no fall of the index liquidates
        return math.log(p.mark_price / price) if p.is_long else math.log(price / p.mark_price)

    def x(self, t: float) -> float:
        lo, hi = 0.0, self.hi
        t_lo, t_hi = self.t(lo), self.t(hi)
        if not (math.isfinite(t) and math.isfinite(t_lo)) or math.isnan(t_hi) or not t_lo <= t <= t_hi:
            return math.nan
        for _ in range(_BISECT_STEPS):
            mid = (lo + hi) / 2
            tm = self.t(mid)
            if math.isnan(tm):
                return math.nan
            lo, hi = (mid, hi) if tm < t else (lo, mid)
        return hi
