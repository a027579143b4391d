"""Hourly (or finer) price files for backtests, training and benchmarks.

Reads the CSV layouts in ``shared/data/prices`` and the project's own synthetic files: a header
with ``timestamp_utc`` (``YYYY-MM-DD HH:MM:SS``, UTC; the bar's open time) and either OHLC columns
(``open,high,low,close``) or a single ``close`` (or ``price``). Files are aligned on one grid of
bar times; a missing bar is forward-filled from the last close and flagged in ``filled``."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keeper.errors import ConfigError

DEFAULT_PRICES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "prices"


@dataclass(frozen=True)
class PriceSeries:
    """One asset on a regular grid: ``t`` (seconds since the epoch, bar open) and OHLC arrays."""

    symbol: str
    t: np.ndarray  # int64 seconds
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    filled: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # True where a bar was missing
    step: int = 3600

    def __len__(self) -> int:
        return len(self.t)

    def window(self, start: str | int | None = None, end: str | int | None = None) -> PriceSeries:
        """Bars with start <= t < end (ISO dates or epoch seconds)."""
        lo = 0 if start is None else int(np.searchsorted(self.t, _epoch(start)))
        hi = len(self.t) if end is None else int(np.searchsorted(self.t, _epoch(end)))
        return PriceSeries(self.symbol, self.t[lo:hi], self.open[lo:hi], self.high[lo:hi], self.low[lo:hi],
                           self.close[lo:hi], self.filled[lo:hi], self.step)


def _epoch(value: str | int) -> int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return int(np.datetime64(value.replace(" ", "T"), "s").astype(np.int64))


def symbol_of(path: Path) -> str:
    """``ETHUSDT_binance_1h.csv`` -> ``ETH``; ``WBTCUSD_coingecko_1h.csv`` -> ``WBTC``."""
    head = path.stem.split("_")[0].upper()
    for quote in ("USDT", "USD", "ETH"):
        if head.endswith(quote) and len(head) > len(quote):
            return head[: -len(quote)]
    return head


def load_csv(path: Path, symbol: str | None = None, step: int = 3600, low_clip: float = 0.2) -> PriceSeries:
    """Load one file onto a regular grid of ``step`` seconds.

    ``low_clip``: a low below ``low_clip`` x min(open, close) of its bar is a bad print (LINK's
    0.0001 on 2020-03-12) and is clipped to that bound."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise ConfigError(f"cannot read price file {path}: {e.strerror}") from e
    if len(rows) < 3:
        raise ConfigError(f"price file {path} has fewer than 2 rows of data")
    header = [h.strip().lower() for h in rows[0]]
    if "timestamp_utc" not in header:
        raise ConfigError(f"price file {path}: no timestamp_utc column (columns: {', '.join(header)})")
    ti = header.index("timestamp_utc")
    close_col = "close" if "close" in header else ("price" if "price" in header else None)
    if close_col is None:
        raise ConfigError(f"price file {path}: needs a close or price column")
    cols = {c: header.index(c) for c in ("open", "high", "low") if c in header}
    ci = header.index(close_col)
    try:
        raw_t = np.array([np.datetime64(r[ti].strip().replace(" ", "T"), "s") for r in rows[1:]]).astype(np.int64)
        close = np.array([float(r[ci]) for r in rows[1:]])
        ohlc = {c: np.array([float(r[i]) for r in rows[1:]]) for c, i in cols.items()}
    except (ValueError, IndexError) as e:
        raise ConfigError(f"price file {path}: unparsable row: {e}") from e
    if np.any(~np.isfinite(close)) or np.any(close <= 0):
        raise ConfigError(f"price file {path}: non-positive or non-finite prices")
    # Snap to the grid (CoinGecko samples are a few minutes off the hour); the last sample wins.
    slot = (raw_t // step) * step
    order = np.argsort(slot, kind="stable")
    slot, close = slot[order], close[order]
    ohlc = {c: v[order] for c, v in ohlc.items()}
    last = np.r_[slot[1:] != slot[:-1], True]
    slot, close = slot[last], close[last]
    ohlc = {c: v[last] for c, v in ohlc.items()}
    grid = np.arange(slot[0], slot[-1] + step, step, dtype=np.int64)
    idx = np.searchsorted(slot, grid, side="right") - 1
    present = slot[idx] == grid
    c = close[idx]
    o = np.where(present, ohlc["open"][idx], c) if "open" in ohlc else c.copy()
    h = np.where(present, ohlc["high"][idx], c) if "high" in ohlc else np.maximum(o, c)
    lo = np.where(present, ohlc["low"][idx], c) if "low" in ohlc else np.minimum(o, c)
    body_low = np.minimum(o, c)
    lo = np.maximum(lo, low_clip * body_low)
    h = np.maximum(h, np.maximum(o, c))
    return PriceSeries(symbol or symbol_of(path), grid, o, h, lo, c, ~present, step)


def align(series: Sequence[PriceSeries]) -> list[PriceSeries]:
    """Cut every series to the common span (they must share one step)."""
    if not series:
        return []
    steps = {s.step for s in series}
    if len(steps) != 1:
        raise ConfigError(f"price series have different steps: {sorted(steps)}")
    start = max(int(s.t[0]) for s in series)
    end = min(int(s.t[-1]) for s in series) + series[0].step
    if start >= end:
        raise ConfigError("price files do not overlap in time")
    return [s.window(start, end) for s in series]


def load_prices(paths: Sequence[Path | str], *, aligned: bool = True) -> list[PriceSeries]:
    series = [load_csv(Path(p)) for p in paths]
    return align(series) if aligned else series


def default_files(*symbols: str, directory: Path = DEFAULT_PRICES_DIR) -> list[Path]:
    """``shared/data/prices/<SYMBOL>USDT_binance_1h.csv`` for benchmark and backtest defaults."""
    out = []
    for sym in symbols:
        p = directory / f"{sym.upper()}USDT_binance_1h.csv"
        if not p.exists():
            raise ConfigError(f"no default price file for {sym} at {p}; pass --prices")
        out.append(p)
    return out
