"""Features for the learned P(liquidation within h): one row per (hour, distance).

Pure: numpy only, plus the volatility estimators of ``keeper.risk.volatility``. No clock, no I/O.

Timing convention. Row ``i`` describes the decision taken at the *close* of bar ``i`` (time
``t[i] + step``). It may use bars ``0..i`` (their open, high, low, close) and nothing after: the
test suite perturbs bars ``> i`` and checks that row ``i`` is unchanged. Labels
(``keeper.risk.labels``) look at bars ``i+1..i+h``.

Side. Features are written for a long-collateral position (liquidated when the price *falls* by
``distance``). For an exposure hurt by a *rise* (the debt side, a short perp), call
:func:`flip_side` first: it maps the series to ``1/price`` (high and low swap), which flips the sign
of every log return, so the same code and the same model apply.

Warm-up. Windowed features need history: rows before ``WARMUP_BARS`` carry NaN in some columns
and :func:`valid_rows` excludes them from training and evaluation. (The EWMA's starting variance
averages the first 20 returns, ``volatility.ewma_variance``'s default: a look-ahead confined to
the warm-up.)

Live use: ``market_features`` over the last >= ``WARMUP_BARS`` bars, then ``assemble`` at the last
row with each position's distance, then ``columns(X, bundle["feature_names"])``: a model reads the
columns its bundle names, in that order (``assemble`` computes every ``FEATURE_NAMES`` column).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from keeper.risk.volatility import ewma_variance, log_returns, realised_vol

# Raw market columns, one row per bar (what :func:`market_features` returns).
MARKET_NAMES: tuple[str, ...] = (
    "ewma_vol_094",     # hourly EWMA vol, lambda 0.94 (forecast for the next hour)
    "ewma_vol_097",
    "ewma_vol_099",
    "rv_24h",           # realised hourly vol over the last 24 / 168 / 720 returns
    "rv_7d",
    "rv_30d",
    "vol_of_vol",       # std of hourly changes of log EWMA(0.94) vol over the last 7 days
    "ret_1h",           # log returns over the last 1 / 24 / 168 bars
    "ret_24h",
    "ret_7d",
    "drawdown_30d",     # log(close / max high of the last 30 days), <= 0
    "range_24h",        # log(max high / min low) over the last 24 bars
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "funding",          # funding rate per hour at the decision time (0 when not supplied)
)

# Every feature ``assemble`` computes (a model uses a subset: its ``feature_names``). The first
# seventeen are scale free: every vol is a log ratio to the EWMA(0.94) vol and every return or
# drawdown is in units of it, so a model fitted on one asset or era transfers to another (on
# ETH/BTC 2018-2020 -> 2021-2022 this beat absolute levels in their place). The last two are
# absolute and come on top of them: ``log_dist`` (jumps do not scale with the vol, so far from
# liquidation P is not a function of the distance in vol units alone) and ``log_vol`` (the vol
# level: a calm market's vol forecast errs differently from a stormy one's). New names are only
# ever appended, so older bundles' names keep their meaning.
FEATURE_NAMES: tuple[str, ...] = (
    "dist_vol_units",    # log distance / (EWMA(0.94) hourly vol * sqrt(h))
    "lv_ewma097",        # log(ewma_vol_097 / ewma_vol_094)
    "lv_ewma099",
    "lv_rv24h",          # log(rv_24h / ewma_vol_094)
    "lv_rv7d",
    "lv_rv30d",
    "vol_of_vol",
    "z_ret_1h",          # ret_1h / ewma_vol_094
    "z_ret_24h",
    "z_ret_7d",
    "z_drawdown_30d",
    "z_range_24h",
    "hour_sin",
    "hour_cos",
    "dow_sin",
    "dow_cos",
    "funding",
    "log_dist",          # log distance -log(1-d) itself: the part of P that does not scale with vol
    "log_vol",           # log EWMA(0.94) hourly vol: the vol level (not scale free)
)
_RATIOS = {"lv_ewma097": "ewma_vol_097", "lv_ewma099": "ewma_vol_099", "lv_rv24h": "rv_24h",
           "lv_rv7d": "rv_7d", "lv_rv30d": "rv_30d"}
_SCALED = {"z_ret_1h": "ret_1h", "z_ret_24h": "ret_24h", "z_ret_7d": "ret_7d",
           "z_drawdown_30d": "drawdown_30d", "z_range_24h": "range_24h"}
_COPIED = ("vol_of_vol", "hour_sin", "hour_cos", "dow_sin", "dow_cos", "funding")

# Features that grow with the distance to liquidation: P(liq) must not increase with them.
DISTANCE_FEATURES: tuple[str, ...] = ("dist_vol_units", "log_dist")

# The inputs of a model trained by default (`keeper train` without --features): the seventeen
# scale-free features plus the vol level, chosen on 2018-2019 -> 2020 validation among the
# variants of bench/BENCHMARKS.md (stage 9). A subset of FEATURE_NAMES, in FEATURE_NAMES order.
DEFAULT_FEATURES: tuple[str, ...] = (*FEATURE_NAMES[:17], "log_vol")

EWMA_LAMBDAS = (0.94, 0.97, 0.99)
DAY, WEEK, MONTH = 24, 168, 720
WARMUP_BARS = MONTH + 1
_VOL_FLOOR = 1e-5  # hourly; keeps distance-in-vol-units finite on flat (filled) stretches


def flip_side(close: np.ndarray, high: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The series as seen by an exposure hurt by rises: ``1/price``; high and low swap."""
    close, high, low = (np.asarray(a, dtype=float) for a in (close, high, low))
    return 1.0 / close, 1.0 / low, 1.0 / high


def _next_hour_variance(returns: np.ndarray, lam: float) -> np.ndarray:
    """Variance forecast for the return *after* bar i, for every bar i (length len(returns)+1).

    ``ewma_variance(r)[k]`` uses returns up to k-1 and forecasts r[k] = log(c[k+1]/c[k]); a dummy
    return appended at the end gives the forecast after the last bar without using it."""
    return np.asarray(ewma_variance(np.r_[returns, 0.0], lam=lam), dtype=float)


def _trailing(values: np.ndarray, window: int, fn: Callable[..., np.ndarray]) -> np.ndarray:
    """fn over values[i-window+1..i] for each i (NaN until a full window exists)."""
    out = np.full(len(values), np.nan)
    if len(values) >= window:
        out[window - 1:] = fn(sliding_window_view(values, window), axis=-1)
    return out


def _lagged_log_return(close: np.ndarray, k: int) -> np.ndarray:
    out = np.full(len(close), np.nan)
    if len(close) > k:
        out[k:] = np.log(close[k:] / close[:-k])
    return out


def _realised(returns: np.ndarray, window: int) -> np.ndarray:
    """Realised hourly vol at each bar i over the ``window`` returns ending with bar i's.

    Row 0 has no return; ``realised_vol`` gives one value per return window (or a full-length
    array with NaN head); both are placed so that the value at bar i ends with return i-1 -> i."""
    n = len(returns) + 1
    out = np.full(n, np.nan)
    if len(returns) < window:
        return out
    rv = np.asarray(realised_vol(returns, window), dtype=float)
    if len(rv) == len(returns):      # aligned with returns: rv[k] ends with returns[k]
        out[1:] = rv
    elif len(rv) == len(returns) - window + 1:   # only full windows
        out[window:] = rv
    else:
        raise ValueError(f"realised_vol returned {len(rv)} values for {len(returns)} returns")
    out[:window] = np.nan
    return out


def market_features(t: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray, *,
                    funding: np.ndarray | None = None, step: int = 3600) -> np.ndarray:
    """The distance-independent columns (``MARKET_NAMES``), one row per bar. Shape (n, len(MARKET_NAMES))."""
    t = np.asarray(t, dtype=np.int64)
    close, high, low = (np.asarray(a, dtype=float) for a in (close, high, low))
    n = len(close)
    if not (len(t) == len(high) == len(low) == n):
        raise ValueError("t, close, high and low must have one length")
    if n < 2:
        raise ValueError("need at least two bars")
    r = np.asarray(log_returns(close), dtype=float)
    cols: dict[str, np.ndarray] = {}
    for lam in EWMA_LAMBDAS:
        var = _next_hour_variance(r, lam)
        cols[f"ewma_vol_{round(lam * 100):03d}"] = np.sqrt(np.maximum(var, 0.0))
    cols["rv_24h"] = _realised(r, DAY)
    cols["rv_7d"] = _realised(r, WEEK)
    cols["rv_30d"] = _realised(r, MONTH)
    logv = np.log(np.maximum(cols["ewma_vol_094"], _VOL_FLOOR))
    dlogv = np.r_[np.nan, np.diff(logv)]
    cols["vol_of_vol"] = _trailing(dlogv, WEEK, np.std)
    cols["ret_1h"] = _lagged_log_return(close, 1)
    cols["ret_24h"] = _lagged_log_return(close, DAY)
    cols["ret_7d"] = _lagged_log_return(close, WEEK)
    cols["drawdown_30d"] = np.log(close / _trailing(high, MONTH, np.max))
    cols["range_24h"] = np.log(_trailing(high, DAY, np.max) / _trailing(low, DAY, np.min))
    decided = t + step                      # the decision is taken at the bar's close
    hour = (decided // 3600) % 24
    dow = ((decided // 86400) + 3) % 7      # 1970-01-01 was a Thursday; Monday = 0
    cols["hour_sin"], cols["hour_cos"] = np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)
    cols["dow_sin"], cols["dow_cos"] = np.sin(2 * np.pi * dow / 7), np.cos(2 * np.pi * dow / 7)
    if funding is None:
        cols["funding"] = np.zeros(n)
    else:
        funding = np.asarray(funding, dtype=float)
        if len(funding) != n:
            raise ValueError("funding must have one value per bar")
        cols["funding"] = funding
    return np.column_stack([cols[name] for name in MARKET_NAMES])


def assemble(market: np.ndarray, rows: np.ndarray, distance: np.ndarray, horizon_hours: int) -> np.ndarray:
    """Feature matrix (columns ``FEATURE_NAMES``) for positions at fractional ``distance`` (0 < d < 1)
    below the close of bars ``rows``. ``rows`` and ``distance`` broadcast together."""
    rows, distance = np.broadcast_arrays(np.asarray(rows, dtype=np.int64), np.asarray(distance, dtype=float))
    if np.any((distance <= 0) | (distance >= 1)):
        raise ValueError("distance must be a fraction in (0, 1)")
    m = market[rows]
    col = {name: m[:, j] for j, name in enumerate(MARKET_NAMES)}
    sigma = np.maximum(col["ewma_vol_094"], _VOL_FLOOR)
    out = np.empty((len(rows), len(FEATURE_NAMES)))
    log_d = -np.log1p(-distance)
    out[:, 0] = log_d / (sigma * np.sqrt(horizon_hours))
    out[:, FEATURE_NAMES.index("log_dist")] = log_d
    out[:, FEATURE_NAMES.index("log_vol")] = np.log(sigma)
    for name, raw in _RATIOS.items():
        out[:, FEATURE_NAMES.index(name)] = np.log(np.maximum(col[raw], _VOL_FLOOR) / sigma)
    for name, raw in _SCALED.items():
        out[:, FEATURE_NAMES.index(name)] = col[raw] / sigma
    for name in _COPIED:
        out[:, FEATURE_NAMES.index(name)] = col[name]
    return out


def columns(X: np.ndarray, names: Iterable[str]) -> np.ndarray:
    """The columns ``names`` (in that order) of a matrix from :func:`assemble` (``FEATURE_NAMES``):
    how a model's inputs (its ``feature_names``) are picked."""
    picked: np.ndarray = np.asarray(X)[:, [FEATURE_NAMES.index(n) for n in names]]
    return picked


def log_distance_of(X: np.ndarray, sigma: np.ndarray, horizon_hours: int) -> np.ndarray:
    """Back from features to the log distance -log(1-d), given the rows' EWMA(0.94) hourly vol."""
    log_d: np.ndarray = X[:, 0] * np.maximum(sigma, _VOL_FLOOR) * np.sqrt(horizon_hours)
    return log_d


def feature_matrix(t: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray, distance: float,
                   horizon_hours: int, *, funding: np.ndarray | None = None, step: int = 3600,
                   side: str = "long") -> np.ndarray:
    """Features at every bar for one fractional distance. ``side='short'`` flips the series first
    (the distance is then the fractional *rise* to the liquidation price)."""
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', not {side!r}")
    if side == "short":
        close, high, low = flip_side(close, high, low)
        distance = 1.0 - 1.0 / (1.0 + distance)   # a rise of d is a fall of d/(1+d) in 1/price
    market = market_features(t, close, high, low, funding=funding, step=step)
    return assemble(market, np.arange(len(close)), np.full(len(close), distance), horizon_hours)


def valid_rows(market: np.ndarray) -> np.ndarray:
    """Boolean mask of rows past the warm-up with every market feature finite."""
    ok: np.ndarray = np.all(np.isfinite(market), axis=1)
    ok[:WARMUP_BARS] = False
    return ok
