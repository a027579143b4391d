"""What a backtest run cost and risked.

Buffer: collateral value above the liquidation point (``book.buffer_usd``) as a share of debt,
time-averaged over the bars the position was open (the idle capital a policy ties up), and its peak.
Capital-days: buffer in USD integrated over time (USD x days). Transactions and their gas.

The stricter check (``trigger_failures``): a position sitting *exactly* at the policy's trigger at
the close of bar ``t`` must survive the extremes of bars ``t+1 .. t+delay+1`` (the bar in which it
falls through the trigger, plus the reaction delay), at every hour. A run can show 0 liquidations
because its position happened to sit high in its band when a crash came; this check cannot be
passed by luck.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from keeper.backtest.engine import Result
from keeper.backtest.policies import Thresholds


@dataclass(frozen=True)
class Metrics:
    bars: int
    liquidations: int
    penalty_usd: float
    avg_buffer: float          # share of debt, time-averaged
    peak_buffer: float
    capital_days: float        # USD x days of buffer
    transactions: int
    topups: int
    releases: int
    gas_usd: float
    trigger_failures: int      # hours at which a position at the trigger would not survive
    first_failure: int         # bar index of the first such hour, -1 if none
    avg_trigger: float         # time-averaged trigger distance

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def future_extreme(values: np.ndarray, bars: int, fn: Callable[..., Any] = np.min) -> np.ndarray:
    """out[t] = fn(values[t+1 .. t+bars]); NaN where the window runs past the end."""
    n = len(values)
    out = np.full(n, np.nan)
    if n > bars:
        out[: n - bars] = fn(sliding_window_view(values[1:], bars), axis=1)
    return out


def trigger_failures(close: np.ndarray, low: np.ndarray, high: np.ndarray, trigger: np.ndarray,
                     delay_bars: int, side: str = "long") -> np.ndarray:
    """Boolean per bar: a position at distance ``trigger[t]`` at close ``t`` is liquidated within the
    next ``delay_bars + 1`` bars. Bars whose window runs past the data are False."""
    k = delay_bars + 1
    if side == "long":
        worst = future_extreme(low, k, np.min)
        with np.errstate(invalid="ignore"):
            return worst <= close * (1.0 - trigger)
    worst = future_extreme(high, k, np.max)
    with np.errstate(invalid="ignore"):
        return worst >= close * (1.0 + trigger)


def summarize(res: Result) -> Metrics:
    open_ = np.isfinite(res.distance)
    share = np.where(open_ & (res.debt_usd > 0), res.buffer_usd / np.where(res.debt_usd > 0, res.debt_usd, 1.0), np.nan)
    fails = trigger_failures(res.price, res.low, res.high, res.thresholds.trigger, res.delay_bars, res.side)
    idx = np.flatnonzero(fails)
    days = res.step / 86400.0
    return Metrics(
        bars=int(open_.sum()),
        liquidations=len(res.liquidations),
        penalty_usd=float(sum(liq.penalty_usd for liq in res.liquidations)),
        avg_buffer=float(np.nanmean(share)) if open_.any() else float("nan"),
        peak_buffer=float(np.nanmax(share)) if open_.any() else float("nan"),
        capital_days=float(np.sum(res.buffer_usd[open_]) * days),
        transactions=len(res.actions),
        topups=sum(a.kind == "topup" for a in res.actions),
        releases=sum(a.kind == "release" for a in res.actions),
        gas_usd=float(sum(a.gas_usd for a in res.actions)),
        trigger_failures=int(fails.sum()),
        first_failure=int(idx[0]) if len(idx) else -1,
        avg_trigger=float(np.mean(res.thresholds.trigger)),
    )


def combine(ms: list[Metrics]) -> Metrics:
    """Several runs (assets) as one: counts and USD summed, buffers averaged (bar-weighted), peak max."""
    w = np.array([m.bars for m in ms], dtype=float)
    w = w / w.sum() if w.sum() > 0 else np.full(len(ms), 1.0 / len(ms))
    fails = [m.first_failure for m in ms if m.first_failure >= 0]
    return Metrics(
        bars=sum(m.bars for m in ms), liquidations=sum(m.liquidations for m in ms),
        penalty_usd=sum(m.penalty_usd for m in ms),
        avg_buffer=float(np.dot(w, [m.avg_buffer for m in ms])), peak_buffer=max(m.peak_buffer for m in ms),
        capital_days=sum(m.capital_days for m in ms), transactions=sum(m.transactions for m in ms),
        topups=sum(m.topups for m in ms), releases=sum(m.releases for m in ms), gas_usd=sum(m.gas_usd for m in ms),
        trigger_failures=sum(m.trigger_failures for m in ms), first_failure=min(fails) if fails else -1,
        avg_trigger=float(np.dot(w, [m.avg_trigger for m in ms])),
    )


HEADER = ("policy", "liqs", "trig fails", "avg buf", "peak buf", "cap-days $", "txs", "gas $")


def row(label: str, m: Metrics) -> tuple[str, ...]:
    return (label, str(m.liquidations), str(m.trigger_failures), f"{m.avg_buffer:.1%}", f"{m.peak_buffer:.1%}",
            f"{m.capital_days:,.0f}", str(m.transactions), f"{m.gas_usd:,.0f}")


def table(rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> str:
    widths = [max(len(str(r[j])) for r in [header, *rows]) for j in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(str(c).ljust(widths[0]) if j == 0 else str(c).rjust(widths[j]) for j, c in enumerate(r))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)])


def thresholds_digest(th: Thresholds) -> str:
    """sha256 of a policy's four per-bar threshold arrays (float64 bytes): equal digests, equal
    thresholds at every bar."""
    import hashlib

    import numpy as np
    h = hashlib.sha256()
    for a in (th.trigger, th.target, th.release, th.release_target):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()
