"""Parameter grids, evaluation over several assets, and the Pareto frontier.

A policy's parameters trade idle capital (average buffer) against transactions and risk. A
parameter point is *feasible* when its runs had no liquidation and it passed the stricter
trigger-survival check (``metrics.trigger_failures``); the frontier is the feasible points no other
feasible point beats on both average buffer and transactions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from keeper.backtest.book import LendingPosition
from keeper.backtest.engine import (
    Gas,
    Policy,
    Position,
    Result,
    driver_of,
    lending_position,
    policy_thresholds,
    run,
)
from keeper.backtest.metrics import Metrics, combine, summarize
from keeper.backtest.policies import ProbModel, RiskPolicy, SeriesModel, StaticPolicy, Thresholds
from keeper.backtest.prices import PriceSeries
from keeper.risk.laws import TailLaw

DEFAULT_GAS = Gas()


def pareto_front(points: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated rows of ``points`` (k x m, every column minimised), sorted by
    the first column."""
    pts = np.asarray(points, dtype=float)
    keep: list[int] = []
    for i, p in enumerate(pts):
        dominated = np.any(np.all(pts <= p, axis=1) & np.any(pts < p, axis=1))
        if not dominated:
            keep.append(i)
    idx = np.array(keep, dtype=int)
    return idx[np.argsort(pts[idx, 0], kind="stable")] if len(idx) else idx


def static_grid(triggers: Iterable[float] | None = None, gaps: Iterable[float] = (0.1, 0.2),
                boosts: Iterable[float] = (0.15, 0.3)) -> list[StaticPolicy]:
    triggers = np.round(np.arange(1.15, 1.71, 0.05), 2) if triggers is None else triggers
    out = []
    for trig, gap, boost in itertools.product(triggers, gaps, boosts):
        target = round(float(trig) + gap, 3)
        out.append(StaticPolicy(float(trig), target, round(target + boost, 3), target))
    return out


def risk_grid(model: ProbModel | None = None, epsilons: Iterable[float] = (1e-4, 5e-5, 2e-5, 1e-5),
              horizons: Iterable[int] = (2, 6),
              bands: Iterable[tuple[float, float]] = ((0.5, 0.1), (0.5, 0.15), (0.5, 0.2), (0.6, 0.2), (0.6, 0.3),
                                                      (0.75, 0.5)),
              holds: Iterable[int] = (0,), gaps: Iterable[tuple[float, float]] | None = None,
              **policy: Any) -> list[RiskPolicy]:
    """``bands``: (target_below, release_below) pairs, multiples of epsilon (hysteresis in P);
    ``gaps``: instead, (target_gap, release_gap) pairs (hysteresis in distance, ``RiskPolicy``);
    ``holds``: ``hold_hours`` values; ``policy``: further fixed ``RiskPolicy`` fields."""
    model = SeriesModel(TailLaw()) if model is None else model
    if gaps is not None:
        return [RiskPolicy(float(e), int(h), 0.05, model, None, int(hold), float(gt), float(gr), **policy)
                for h, e, (gt, gr), hold in itertools.product(horizons, epsilons, gaps, holds)]
    return [RiskPolicy(float(e), int(h), float(rb), model, float(tb), hold_hours=int(hold), **policy)
            for h, e, (tb, rb), hold in itertools.product(horizons, epsilons, bands, holds)]


@dataclass
class Evaluated:
    policy: Policy
    metrics: Metrics
    per_asset: list[Metrics]
    results: list[Result]

    @property
    def feasible(self) -> bool:
        return self.metrics.liquidations == 0 and self.metrics.trigger_failures == 0


def default_position(series: PriceSeries, policy: Policy) -> LendingPosition:
    """The study's position: one collateral, USD debt, opened at the policy's first target."""
    health = policy.target if isinstance(policy, StaticPolicy) else 1.5
    return lending_position(series.symbol, float(series.close[0]), health)


class Evaluator:
    """Runs policies over a fixed list of series, caching each risk model's probability matrix per
    (asset, model, horizon) so a grid over epsilon costs one model evaluation."""

    def __init__(self, series: list[PriceSeries], *, delay_bars: int = 1, gas: Gas = DEFAULT_GAS,
                 make_position: Callable[[PriceSeries, Policy], Position] = default_position,
                 keep_results: bool = False) -> None:
        self.series, self.delay_bars, self.gas = series, delay_bars, gas
        self.make_position, self.keep_results = make_position, keep_results
        self._p: dict[tuple[str, int, int, int, int, str], np.ndarray] = {}

    def _thresholds(self, policy: Policy, s: PriceSeries, side: str) -> Thresholds:
        if not isinstance(policy, RiskPolicy):
            return policy_thresholds(policy, s, side)
        key = (s.symbol, int(s.t[0]), len(s), id(policy.model), policy.horizon_hours, side)
        if key not in self._p:
            from keeper.backtest.engine import flipped
            self._p[key] = policy.prob_matrix(s if side == "long" else flipped(s))
        return policy_thresholds(policy, s, side, self._p[key])

    def evaluate(self, policy: Policy) -> Evaluated:
        ms, rs = [], []
        for s in self.series:
            pos = self.make_position(s, policy)
            _, side = driver_of(pos)
            th = self._thresholds(policy, s, side)
            if isinstance(policy, RiskPolicy):   # open the position at the policy's own first target
                pos.apply(pos.size_to_distance(float(th.target[0]), {s.symbol: float(s.close[0])}),
                          {s.symbol: float(s.close[0])})
            res = run([s], pos, policy, delay_bars=self.delay_bars, gas=self.gas, thresholds=th,
                      label=policy.label())
            ms.append(summarize(res))
            if self.keep_results:
                rs.append(res)
        return Evaluated(policy, combine(ms), ms, rs)

    def grid(self, policies: Iterable[Policy]) -> list[Evaluated]:
        return [self.evaluate(p) for p in policies]


def frontier(evals: list[Evaluated]) -> list[Evaluated]:
    ok = [e for e in evals if e.feasible]
    if not ok:
        return []
    idx = pareto_front(np.array([[e.metrics.avg_buffer, e.metrics.transactions] for e in ok]))
    return [ok[i] for i in idx]


def cheapest_within(evals: list[Evaluated], max_per_asset: list[int]) -> Evaluated | None:
    """:func:`cheapest` among the points with, on every asset, at most ``max_per_asset[i]``
    transactions (the static pick's: "no more transactions" asked asset by asset)."""
    ok = [e for e in evals if all(m.transactions <= cap for m, cap in zip(e.per_asset, max_per_asset))]
    return cheapest(ok)


def cheapest(evals: list[Evaluated], max_transactions: int | None = None) -> Evaluated | None:
    """The feasible point with the least average buffer (then fewest transactions), optionally among
    those with at most ``max_transactions``."""
    ok = [e for e in evals if e.feasible and (max_transactions is None or e.metrics.transactions <= max_transactions)]
    return min(ok, key=lambda e: (round(e.metrics.avg_buffer, 6), e.metrics.transactions)) if ok else None
