"""The market a risk model sees at one moment: per-asset hourly vol (and regime state) with where it
came from, pairwise correlations, and which assets are stable legs.

Pure: numpy only. The daemon gathers the hourly closes (its store, the feeds' round history, price
files) and calls :func:`market_from_history`; tests build a :class:`Market` directly.

Stablecoins are *stable legs*: their price is held fixed in every model (a depeg is a separate stress
scenario, ``keeper.risk.stress``), never given a vol. An asset with no usable history gets the
configured default vol, and its source says so (the daemon raises a warning alert for it).

Correlations: an EWMA (``corr_lambda``) of the aligned hourly log returns of every pair with enough
common history. A pair without one is *unknown*: the joint reduction then takes, per pair, the
end of [0, 1] that makes the position riskier (``keeper.risk.joint``) — conservative, never a
silent independence."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from keeper.risk.laws import HOURS_PER_YEAR, Law
from keeper.risk.volatility import ewma_covariance

STABLECOINS = frozenset({"USDC", "USDT", "DAI", "USD", "FRAX", "LUSD", "USDC.E", "USDBC", "GHO", "PYUSD"})
MIN_CORR_RETURNS = 48  # common hourly returns needed for a measured correlation


def is_stable(symbol: str) -> bool:
    return symbol.upper() in STABLECOINS


@dataclass(frozen=True)
class AssetState:
    """One asset's law state now: ``sigma`` the hourly vol forecast, ``extra`` the law's regime
    columns, ``source`` where the history came from (for every decision line)."""

    sigma: float
    source: str
    extra: tuple[float, ...] = ()

    @property
    def annual(self) -> float:
        return self.sigma * math.sqrt(HOURS_PER_YEAR)


@dataclass(frozen=True)
class Market:
    assets: Mapping[str, AssetState] = field(hash=False)
    corr: Mapping[tuple[str, str], float] = field(default_factory=dict, hash=False)  # keys sorted
    default: AssetState | None = None  # for a volatile symbol missing from ``assets``
    corr_source: str = ""

    def state(self, symbol: str) -> AssetState:
        s = self.assets.get(symbol)
        if s is not None:
            return s
        if self.default is None:
            raise KeyError(f"no vol for {symbol} and no default")
        return self.default

    def rho(self, a: str, b: str) -> float | None:
        """The measured correlation of two symbols, or None (unknown)."""
        if a == b:
            return 1.0
        return self.corr.get((a, b) if a < b else (b, a))

    def vols(self) -> dict[str, dict[str, float | str]]:
        """``{symbol: {"annual": ..., "source": ...}}`` for reports (stable legs included)."""
        return {s: {"annual": a.annual, "source": a.source} for s, a in sorted(self.assets.items())}

    def describe(self) -> str:
        parts = [f"{s} {a.annual:.0%}/yr ({a.source})" for s, a in sorted(self.assets.items()) if a.sigma > 0]
        stable = [s for s, a in sorted(self.assets.items()) if a.sigma == 0]
        text = "vols " + (", ".join(parts) or "none")
        if stable:
            text += "; stable legs " + ", ".join(stable)
        if self.corr:
            text += "; corr " + ", ".join(f"{a}/{b} {r:.2f}" for (a, b), r in sorted(self.corr.items()))
        return text + (f" ({self.corr_source})" if self.corr_source and self.corr else "")

    def scaled(self, k: float) -> Market:
        """Every vol times ``k`` (a stress or a what-if)."""
        return Market({s: AssetState(a.sigma * k, a.source, a.extra) for s, a in self.assets.items()}, self.corr,
                      None if self.default is None else AssetState(self.default.sigma * k, self.default.source),
                      self.corr_source)


@dataclass(frozen=True)
class History:
    """Hourly bars of one symbol, oldest first (``low`` may be the closes when only closes exist),
    and a human description of where they came from."""

    close: np.ndarray
    low: np.ndarray | None
    source: str
    t: np.ndarray | None = None  # bar times (seconds), for aligning pairs


def market_from_history(law: Law, symbols: Sequence[str], history: Mapping[str, History], *,
                        default_annual: float, min_returns: int = 24, corr_lambda: float = 0.97,
                        overrides: Mapping[str, float] | None = None) -> Market:
    """The law's state of each symbol from its hourly history (the last row of ``law.state``);
    ``overrides`` (annual vols) win, stablecoins are stable legs, a symbol with fewer than
    ``min_returns`` hourly returns gets ``default_annual`` with a source saying why."""
    overrides = overrides or {}
    assets: dict[str, AssetState] = {}
    default_sigma = default_annual / math.sqrt(HOURS_PER_YEAR)
    for sym in symbols:
        h = history.get(sym)
        if sym in overrides:
            assets[sym] = AssetState(overrides[sym] / math.sqrt(HOURS_PER_YEAR), "override")
        elif is_stable(sym):
            assets[sym] = AssetState(0.0, "stable leg (depeg: a stress scenario)")
        elif h is None or len(h.close) - 1 < min_returns:
            n = 0 if h is None else max(len(h.close) - 1, 0)
            where = "" if h is None else f" from {h.source}"
            assets[sym] = AssetState(default_sigma, f"DEFAULT {default_annual:.0%}/yr: {n} hourly returns{where} "
                                                    f"(< {min_returns})")
        else:
            row = law.state(h.close, h.low)[-1]
            assets[sym] = AssetState(float(row[0]), f"{len(h.close) - 1} h of {h.source}",
                                     tuple(float(v) for v in row[1:]))
    corr: dict[tuple[str, str], float] = {}
    vol_syms = sorted(s for s in symbols if not is_stable(s) and s in history and s not in overrides)
    for i, a in enumerate(vol_syms):
        for b in vol_syms[i + 1:]:
            r = _pair_corr(history[a], history[b], corr_lambda)
            if r is not None:
                corr[(a, b)] = r
    default = AssetState(default_sigma, f"DEFAULT {default_annual:.0%}/yr: no history")
    return Market(assets, corr, default, f"EWMA {corr_lambda:g} of common hourly returns" if corr else "")


def _pair_corr(a: History, b: History, lam: float) -> float | None:
    if a.t is None or b.t is None:
        n = min(len(a.close), len(b.close))  # no times: assume both end at the same hour
        ca, cb = a.close[-n:], b.close[-n:]
    else:
        _common, ia, ib = np.intersect1d(a.t, b.t, return_indices=True)
        ca, cb = a.close[ia], b.close[ib]
    if len(ca) - 1 < MIN_CORR_RETURNS:
        return None
    r = np.diff(np.log(np.column_stack([ca, cb])), axis=0)
    if not np.all(np.isfinite(r)) or np.any(r.std(axis=0) == 0):
        return None
    _cov, c = ewma_covariance(r, lam)
    return float(np.clip(c[0, 1], -1.0, 1.0))
