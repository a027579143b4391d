"""The replay loop: one or more price series through a simulated position under a policy.

Timing (bar ``i`` = the hour starting at ``t[i]``):

1. the position is liquidated if bar ``i``'s extremes cross its liquidation point (collateral at the
   bar's low; a short or a volatile debt asset at its high) and the penalty is charged;
2. a transaction decided ``delay_bars`` bars ago lands at bar ``i``'s close price (the amount was
   fixed when it was decided, as calldata is);
3. the policy looks at the close of bar ``i``: below ``trigger[i]`` it decides a top-up to
   ``target[i]``, above ``release[i]`` a withdrawal to ``release_target[i]``. With ``delay_bars=0``
   it lands at once; otherwise bars ``i+1 .. i+delay`` are faced with the old state. One
   transaction is in flight at a time.

Per-bar policy thresholds come from ``policy.thresholds`` computed once for the whole series, so the
loop itself is plain float arithmetic: five years of hourly bars run in well under a second.
Gas per transaction: ``units x gwei x ETH price`` (ETH from the replayed series if present, else
``eth_usd``), or a flat USD amount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TypeAlias

import numpy as np

from keeper.backtest.book import LendingPosition, PerpPosition
from keeper.backtest.policies import RiskPolicy, StaticPolicy, Thresholds
from keeper.backtest.prices import PriceSeries

Position: TypeAlias = LendingPosition | PerpPosition
Policy: TypeAlias = StaticPolicy | RiskPolicy


@dataclass(frozen=True)
class Gas:
    units: int = 300_000
    gwei: float = 30.0
    eth_usd: float = 2000.0      # used when no ETH series is replayed
    flat_usd: float | None = None

    def cost_usd(self, eth_price: float | None) -> float:
        if self.flat_usd is not None:
            return self.flat_usd
        return self.units * self.gwei * 1e-9 * (eth_price if eth_price is not None else self.eth_usd)


def delay_bars_of(minutes: float, step: int = 3600) -> int:
    """A reaction delay in minutes as whole bars (rounded up: a transaction lands no earlier)."""
    return math.ceil(minutes * 60.0 / step - 1e-9)


@dataclass(frozen=True)
class Action:
    decided: int        # bar index of the decision (at its close)
    executed: int       # bar index at whose close it landed
    kind: str           # "topup" | "release"
    usd: float          # capital moved into (> 0) or out of (< 0) the position
    gas_usd: float


@dataclass(frozen=True)
class Liquidation:
    bar: int
    penalty_usd: float


@dataclass
class Result:
    t: np.ndarray
    price: np.ndarray           # driver close
    low: np.ndarray
    high: np.ndarray
    distance: np.ndarray        # after the bar's actions, at its close (nan once closed)
    buffer_usd: np.ndarray
    debt_usd: np.ndarray
    thresholds: Thresholds
    delay_bars: int
    side: str                   # "long": hurt by a fall of the driver; "short": by a rise
    step: int
    actions: list[Action] = field(default_factory=list)
    liquidations: list[Liquidation] = field(default_factory=list)
    label: str = ""


def driver_of(position: Position) -> tuple[str, str]:
    """(symbol whose move the policy watches, side)."""
    if isinstance(position, PerpPosition):
        return position.symbol, "long" if position.is_long else "short"
    return max(position.collateral, key=lambda s: position.collateral[s] * position.thresholds[s]), "long"


def flipped(series: PriceSeries) -> PriceSeries:
    """1/price: a rise becomes a fall, so long-side models serve shorts."""
    return PriceSeries(series.symbol, series.t, 1.0 / series.open, 1.0 / series.low, 1.0 / series.high,
                       1.0 / series.close, series.filled, series.step)


def rise_from_fall(d: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 - d) - 1.0


def _thresholds(policy: Policy, series: PriceSeries, p: np.ndarray | None) -> Thresholds:
    if p is None:
        return policy.thresholds(series)
    if not isinstance(policy, RiskPolicy):
        raise TypeError(f"a precomputed P matrix is for a RiskPolicy, not a {type(policy).__name__}")
    return policy.thresholds(series, p)


def policy_thresholds(policy: Policy, driver: PriceSeries, side: str, p: np.ndarray | None = None) -> Thresholds:
    if side == "long":
        return _thresholds(policy, driver, p)
    th = _thresholds(policy, flipped(driver), p)
    return Thresholds(*(rise_from_fall(a) for a in (th.trigger, th.target, th.release, th.release_target)))


def run(series: list[PriceSeries] | PriceSeries, position: Position, policy: Policy | None = None, *,
        delay_bars: int = 1, gas: Gas = Gas(), thresholds: Thresholds | None = None, label: str = "") -> Result:
    """Replay ``series`` (aligned, one per asset the position holds) through ``position``.
    ``policy=None`` and no ``thresholds``: an unmanaged position."""
    if isinstance(series, PriceSeries):
        series = [series]
    by = {s.symbol: s for s in series}
    sym, side = driver_of(position)
    drv = by[sym]
    n = len(drv)
    if thresholds is None:
        if policy is None:
            thresholds = Thresholds(np.zeros(n), np.zeros(n), np.full(n, np.inf), np.zeros(n))
        else:
            thresholds = policy_thresholds(policy, drv, side)
    trig, tgt = thresholds.trigger.tolist(), thresholds.target.tolist()
    rel, rtgt = thresholds.release.tolist(), thresholds.release_target.tolist()
    syms = list(by)
    lows = [by[s].low.tolist() for s in syms]
    highs = [by[s].high.tolist() for s in syms]
    closes = [by[s].close.tolist() for s in syms]
    eth = by["ETH"].close.tolist() if "ETH" in by else None
    hours = drv.step / 3600.0
    accrue = getattr(position, "accrue", None)
    dist = np.full(n, np.nan)
    buf = np.zeros(n)
    debt = np.zeros(n)
    res = Result(drv.t, drv.close, drv.low, drv.high, dist, buf, debt, thresholds, delay_bars, side, drv.step,
                 label=label)
    pending: tuple[int, int, str, float] | None = None  # (decided, due, kind, units)
    for i in range(n):
        if position.closed:
            break
        lo = {s: lows[k][i] for k, s in enumerate(syms)}
        hi = {s: highs[k][i] for k, s in enumerate(syms)}
        px = {s: closes[k][i] for k, s in enumerate(syms)}
        if accrue is not None:
            accrue(hours)
        if position.breached(lo, hi):
            res.liquidations.append(Liquidation(i, position.liquidate(lo, hi)))
            if position.closed:
                break
        acted = False
        if pending is not None and pending[1] <= i:
            res.actions.append(_execute(position, pending, i, px, gas, eth))
            pending, acted = None, True
        d = position.distance(px)
        if pending is None:
            if d < trig[i]:
                units = position.size_to_distance(tgt[i], px)
                if units > 0:
                    pending = (i, i + delay_bars, "topup", units)
            elif d > rel[i]:
                units = position.size_to_distance(rtgt[i], px)
                if units < 0:
                    pending = (i, i + delay_bars, "release", units)
            if pending is not None and delay_bars == 0:
                res.actions.append(_execute(position, pending, i, px, gas, eth))
                pending, acted = None, True
        dist[i] = position.distance(px) if acted else d
        buf[i] = position.buffer_usd(px)
        debt[i] = position.debt_usd(px)
    return res


def _execute(position: Position, pending: tuple[int, int, str, float], i: int, px: dict[str, float], gas: Gas,
             eth: list[float] | None) -> Action:
    decided, _, kind, units = pending
    usd = position.apply(units, px)
    return Action(decided, i, kind, usd, gas.cost_usd(eth[i] if eth is not None else None))


def lending_position(symbol: str, price: float, health: float, debt_usd: float = 10_000.0, lt: float = 0.825,
                     penalty: float = 0.05) -> LendingPosition:
    """One collateral, USD debt, opened at ``health`` (the study's position: Aave v3 WETH-like LT)."""
    units = debt_usd * health / (lt * price)
    return LendingPosition({symbol: units}, {symbol: lt}, debt_usd, None, penalty=penalty)
