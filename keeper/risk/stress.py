"""Stress report: P(liquidation) per position per horizon, losses given liquidation, the book's
loss VaR and expected shortfall, replayed historical windows and fan-chart quantiles of every
asset's price.

Pure: takes positions and scenarios (arrays or a ``ScenarioSpec``), returns numbers; the daemon's
slow job and the CLI format and store them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keeper.domain import Position
from keeper.risk import scenarios as sc
from keeper.risk.probability import exposures, monte_carlo_liquidation

DEFAULT_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
FAN_PATHS = 20_000


@dataclass(frozen=True)
class StressReport:
    keys: tuple[str, ...]
    labels: tuple[str, ...]
    symbols: tuple[str, ...]
    horizons: tuple[int, ...]  # steps
    prob: np.ndarray  # (H, K)
    stderr: np.ndarray  # (H, K)
    loss_given_liq: np.ndarray  # (K,) USD
    expected_loss: np.ndarray  # (K,) USD
    n_paths: int
    quantile_levels: tuple[float, ...]
    fan: np.ndarray  # (Q, steps + 1, A) price quantiles in USD, step 0 = now
    prices_now: np.ndarray  # (A,)
    tail_level: float  # e.g. 0.99
    book_var: float  # the tail_level quantile of the book's liquidation loss per path, USD
    book_es: float  # expected shortfall: mean book loss on paths at or beyond book_var, USD
    historical: dict[str, np.ndarray] = field(default_factory=dict)  # window -> (K,) liquidated?
    fixed_symbols: tuple[str, ...] = ()
    depegs: dict[str, np.ndarray] = field(default_factory=dict)  # "USDC -5%" -> (K,) liquidated at once?
    # (K,) liquidatable at today's prices (P = 1 at every horizon): their expected loss is not a
    # Monte Carlo average but the loss of a liquidation now, valued at today's prices (see
    # ``keeper.risk.probability``): lending, the bonus on the debt repaid — never 0 while there is
    # debt —; perps, GMX's margin fees when the collateral still left (collateral + PnL) keeps it in
    # state 2 (closed, the rest returned), else everything left, which is 0 once the losses have
    # eaten the collateral (the trader has nothing left to forfeit: the loss is already taken and
    # any shortfall is the pool's). A 0 there is no "no risk": show it as "liquidatable now".
    liquidated_now: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def rows(self) -> list[dict[str, Any]]:
        """One dict per position, for tables and JSON."""
        out = []
        for k, key in enumerate(self.keys):
            row: dict[str, Any] = {"key": key, "label": self.labels[k]}
            for h_i, h in enumerate(self.horizons):
                row[f"p_liq_{h}"] = float(self.prob[h_i, k])
                row[f"se_{h}"] = float(self.stderr[h_i, k])
            row["loss_given_liq_usd"] = float(self.loss_given_liq[k])
            row["expected_loss_usd"] = float(self.expected_loss[k])
            row["liquidatable_now"] = bool(self.liquidated_now[k]) if len(self.liquidated_now) else False
            for name, hit in self.historical.items():
                row[f"hist_{name}"] = bool(hit[k])
            for name, hit in self.depegs.items():
                row[f"depeg {name}"] = bool(hit[k])
            out.append(row)
        return out

    @property
    def total_expected_loss(self) -> float:
        return float(np.nansum(self.expected_loss))


def current_prices(positions: Sequence[Position], symbols: Sequence[str]) -> np.ndarray:
    """Each symbol's price as the positions report it (first seen; NaN if none holds it)."""
    found: dict[str, float] = {}
    for pos in positions:
        if pos.perp is not None:
            found.setdefault(pos.perp.index.symbol, pos.perp.mark_price)
        for leg in pos.legs:
            found.setdefault(leg.asset.symbol, leg.price_usd)
    return np.array([found.get(s, np.nan) for s in symbols])


def fan_chart(log_returns: np.ndarray, prices_now: np.ndarray,
              levels: Sequence[float] = DEFAULT_QUANTILES) -> np.ndarray:
    """Quantiles of each asset's price over time: (Q, steps + 1, A), step 0 is today's price."""
    x = np.cumsum(np.asarray(log_returns, dtype=float), axis=1)
    q = np.quantile(x, levels, axis=0)  # (Q, steps, A)
    q = np.concatenate([np.zeros((len(levels), 1, x.shape[2])), q], axis=1)
    fan: np.ndarray = np.exp(q) * np.asarray(prices_now, dtype=float)[None, None, :]
    return fan


def stress_report(positions: Sequence[Position], scenarios: tuple[sc.ScenarioSpec, int, sc.Seed] | np.ndarray,
                  horizons: Sequence[int] | None = None, *,
                  symbols: Sequence[str] | None = None, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                  historical: sc.HistoricalShocks | None = None, workers: int = 1,
                  aave_bonus: float = 0.05, prices_now: np.ndarray | None = None,
                  fan_paths: int = FAN_PATHS, tail_level: float = 0.99) -> StressReport:
    """Run the Monte Carlo with losses over ``scenarios`` and collect a report.

    ``scenarios``: a ``(ScenarioSpec, n_paths, seed)`` tuple (generated block by block, never all
    held; ``symbols`` default to the spec's) or a (paths, steps, assets) log-return array over
    ``symbols`` (required then).
    ``horizons`` in steps (default: the last step). The fan chart uses the first ``fan_paths``
    paths only (quantiles need the paths held; 20,000 paths put the 1% quantile within a few
    tenths of a percent). ``historical`` windows are replayed as single paths: a window
    "liquidates" a position if its margin goes negative at any step of the window."""
    if symbols is None:
        if not isinstance(scenarios, tuple):
            raise ValueError("pass symbols with a path array")
        symbols = scenarios[0].symbols
    symbols = tuple(symbols)
    ex = exposures(positions, symbols, aave_bonus)
    if isinstance(scenarios, tuple):  # one seed sequence for the Monte Carlo and the fan chart
        scenarios = (scenarios[0], scenarios[1], sc.seed_sequence(scenarios[2]))
    res = monte_carlo_liquidation(ex, scenarios, horizons, detail=True, workers=workers)
    if isinstance(scenarios, tuple):
        spec, n, seed = scenarios
        sample = sc.simulate_log_returns(spec, min(n, fan_paths), seed, max_bytes=2**31)
    else:
        sample = np.asarray(scenarios)[:fan_paths]
    now = current_prices(positions, symbols) if prices_now is None else np.asarray(prices_now, float)
    fan = fan_chart(sample, np.where(np.isfinite(now), now, 1.0), quantiles)
    hist: dict[str, np.ndarray] = {}
    if historical is not None and len(historical.names):
        for i, name in enumerate(historical.names):  # one path per window, evaluated alone
            one = monte_carlo_liquidation(ex, historical.log_returns[i:i + 1].astype(np.float64))
            hist[name] = one.p > 0.5
    labels = tuple(p.label or p.key for p in positions)
    var, es = res.book_loss_tail(tail_level)
    return StressReport(res.keys, labels, symbols, res.horizons, res.prob, res.stderr, res.loss_given_liq,
                        res.expected_loss, res.n_paths, tuple(quantiles), fan, now, tail_level, var, es,
                        hist, ex.fixed_symbols, liquidated_now=ex.liquidated_now.copy())


DEPEG_MOVES = (-0.10, -0.05, -0.02, 0.02, 0.05)


def depeg_scenarios(positions: Sequence[Position], moves: Sequence[float] = DEPEG_MOVES) -> dict[str, np.ndarray]:
    """Stablecoin depegs, each its own scenario: one stablecoin's price moved by ``move`` at once,
    every other price held; per scenario, which positions that liquidates (a stable leg falling
    hurts its collateral holders, rising hurts its borrowers) — not counting those liquidatable
    already. Only stablecoins the positions hold."""
    from keeper.risk.market import is_stable

    held = sorted({leg.asset.symbol for p in positions if p.perp is None for leg in p.legs
                   if is_stable(leg.asset.symbol) and leg.asset.symbol != "USD"})
    out: dict[str, np.ndarray] = {}
    for sym in held:
        ex = exposures(positions, (sym,))
        for move in moves:
            margin = ex.linear[0] * (1.0 + move) + ex.const
            out[f"{sym} {move:+.0%}"] = ex.at_risk & (margin < 0) & ~ex.liquidated_now
    return out
