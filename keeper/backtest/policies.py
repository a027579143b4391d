"""Keeper policies for the backtester, and the P(liquidation within h) models the risk policy uses.

A policy turns a price series into four per-bar distance arrays (fractional adverse move to
liquidation, see ``book.py``), computed once for the whole series at the bar closes:

- ``trigger[t]``: act (top up) when the position's distance at close ``t`` is below it,
- ``target[t]``: the distance a top-up restores,
- ``release[t]``: withdraw when the distance is above it,
- ``release_target[t]``: the distance a withdrawal leaves.

``StaticPolicy`` is today's ratio keeper (DeFi Saver style): fixed health ratios, converted to
distances by ``d = 1 - 1/health``. ``RiskPolicy`` keeps P(liq within h) <= epsilon: its trigger is
the smallest distance whose probability is <= epsilon, it tops up to the distance at
``epsilon * target_below`` and releases only when P < ``epsilon * release_below`` (hysteresis).
With ``target_gap``/``release_gap`` (> 0) the bands are in distance instead: the target sits a log
price fall of ``target_gap`` above the trigger, the release a rise of ``release_gap`` above the
target (asymmetric hysteresis that does not depend on how steep P is there).

Models are objects with ``prepare(series) -> state`` (everything per bar, causal: row t uses bars
0..t only) and ``prob(state, distance, horizon_hours) -> P`` with ``distance`` shaped (n, G).
``SeriesModel`` asks a law of ``keeper.risk.laws`` (the product's: ``TailLaw``, ``GaussLaw``) about
the series; ``LearnedModel`` wraps a trained bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.ndimage import maximum_filter1d

from keeper.backtest.prices import PriceSeries
from keeper.risk.laws import Law, TailLaw

GRID = np.geomspace(0.004, 0.9, 48)   # distances the models are evaluated on before interpolation


class ProbModel(Protocol):
    """What ``RiskPolicy`` asks of a model (see the module's docstring)."""

    def prepare(self, series: PriceSeries) -> np.ndarray: ...

    def prob(self, state: np.ndarray, distance: np.ndarray, horizon_hours: float) -> np.ndarray: ...


@dataclass(frozen=True)
class Thresholds:
    trigger: np.ndarray
    target: np.ndarray
    release: np.ndarray
    release_target: np.ndarray


def health_to_distance(h: float) -> float:
    return 1.0 - 1.0 / h


@dataclass(frozen=True)
class StaticPolicy:
    """Top up to ``target`` when health < ``trigger``; withdraw to ``boost_target`` when health >
    ``boost_trigger`` (``inf`` disables boosting)."""

    trigger: float = 1.5
    target: float = 1.7
    boost_trigger: float = 2.0
    boost_target: float = 1.8

    def __post_init__(self) -> None:
        if not 1.0 < self.trigger <= self.target:
            raise ValueError("need 1 < trigger <= target")
        if not self.boost_target <= self.boost_trigger or self.boost_target < self.trigger:
            raise ValueError("need trigger <= boost_target <= boost_trigger")

    def thresholds(self, series: PriceSeries) -> Thresholds:
        n = len(series)
        rel = 1.0 if not np.isfinite(self.boost_trigger) else health_to_distance(self.boost_trigger)
        return Thresholds(np.full(n, health_to_distance(self.trigger)), np.full(n, health_to_distance(self.target)),
                          np.full(n, rel), np.full(n, health_to_distance(self.boost_target)))

    def label(self) -> str:
        return (f"static trig {self.trigger:.2f} tgt {self.target:.2f} "
                f"boost {self.boost_trigger:.2f}->{self.boost_target:.2f}")


@dataclass(frozen=True)
class RiskPolicy:
    epsilon: float = 1e-3
    horizon_hours: int = 24
    release_below: float = 0.05
    model: ProbModel | None = None
    target_below: float | None = None    # default sqrt(release_below): midway in log P
    hold_hours: int = 0                  # release only past the max release level of the last hours
    target_gap: float = 0.0              # > 0: the bands in distance, not P (below)
    release_gap: float = 0.0

    def __post_init__(self) -> None:
        if self.target_gap < 0 or self.release_gap < 0 or (self.target_gap > 0) != (self.release_gap > 0):
            raise ValueError("target_gap and release_gap: both > 0 (bands in distance) or both 0 (in P)")

    def levels(self) -> tuple[float, float, float]:
        tb = self.target_below if self.target_below is not None else float(np.sqrt(self.release_below))
        if not 0 < self.release_below < tb <= 1:
            raise ValueError("need 0 < release_below < target_below <= 1")
        return self.epsilon, self.epsilon * tb, self.epsilon * self.release_below

    def prob_matrix(self, series: PriceSeries) -> np.ndarray:
        """P(liq within h) at every bar (rows) and every ``GRID`` distance (columns)."""
        model: ProbModel = self.model if self.model is not None else SeriesModel(TailLaw())
        state = model.prepare(series)
        return model.prob(state, np.broadcast_to(GRID, (len(series), len(GRID))), self.horizon_hours)

    def thresholds(self, series: PriceSeries, p: np.ndarray | None = None) -> Thresholds:
        """``p``: a precomputed :meth:`prob_matrix` (grids over epsilon share one)."""
        p = self.prob_matrix(series) if p is None else p
        if self.target_gap > 0:
            # bands as log price moves: fall target_gap to the trigger, rise release_gap to release
            trig = distance_at(p, self.epsilon)
            tgt = -np.expm1(np.log1p(-trig) - self.target_gap)
            rel = -np.expm1(np.log1p(-tgt) - self.release_gap)
        else:
            trig, tgt, rel = (distance_at(p, level) for level in self.levels())
        if self.hold_hours > 1:   # releases answer to the most demanding level of the last hours
            rel, rtgt = rolling_max(rel, self.hold_hours), rolling_max(tgt, self.hold_hours)
        else:
            rtgt = tgt
        return Thresholds(trig, tgt, rel, rtgt)

    def label(self) -> str:
        tag = getattr(self.model, "tag", "")
        if self.target_gap > 0:
            band = f"tgt +{self.target_gap:.3g} rel +{self.release_gap:.3g}"
        else:
            _, tb, rb = self.levels()
            band = f"tgt {tb / self.epsilon:g}eps rel {rb / self.epsilon:g}eps"
        return (f"risk{' ' + tag if tag else ''} eps {self.epsilon:g} h {self.horizon_hours} {band}"
                + (f" hold {self.hold_hours}h" if self.hold_hours > 1 else ""))


def rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """Causal: out[t] = max(x[t-window+1 .. t])."""
    out: np.ndarray = maximum_filter1d(x, size=window, origin=(window - 1) // 2, mode="nearest")
    return out


def distance_at(p: np.ndarray, level: float, grid: np.ndarray = GRID) -> np.ndarray:
    """Per row, the smallest grid distance with P <= level, log-interpolated between grid points.
    ``p`` (n, G) must be non-increasing along the grid (it is made so)."""
    p = np.minimum.accumulate(np.clip(p, 1e-300, 1.0), axis=1)
    below = p <= level
    idx = np.where(below.any(axis=1), below.argmax(axis=1), len(grid) - 1)
    rows = np.arange(len(p))
    hi_i = idx
    lo_i = np.maximum(idx - 1, 0)
    lp_lo, lp_hi = np.log(p[rows, lo_i]), np.log(p[rows, hi_i])
    ll = np.log(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(lp_lo > lp_hi, (lp_lo - ll) / (lp_lo - lp_hi), 1.0)
    w = np.clip(w, 0.0, 1.0)
    g = np.log(grid)
    d: np.ndarray = np.exp(g[lo_i] + w * (g[hi_i] - g[lo_i]))
    return d


# --------------------------------------------------------------------------- models


@dataclass(frozen=True)
class SeriesModel:
    """A law of ``keeper.risk.laws`` asked about one asset's distance to a liquidation price at every
    bar: ``prepare`` is the law's causal state of the series, ``prob`` its P at each (bar, distance)."""

    law: Law

    @property
    def tag(self) -> str:
        return getattr(self.law, "tag", self.law.kind)

    def prepare(self, series: PriceSeries) -> np.ndarray:
        return self.law.state(series.close, series.low)

    def prob(self, state: np.ndarray, distance: np.ndarray, horizon_hours: float) -> np.ndarray:
        x = -np.log1p(-np.asarray(distance))                      # log distance
        return self.law.prob(x, state[:, None, :], horizon_hours)


def fit_tail(tuning: list[PriceSeries], u: float = 0.03, fast: float = 0.94, slow: float = 0.0,
             **fit: Any) -> TailLaw:
    """:meth:`TailLaw.fit` on price series (labelled with their symbols and bar count); ``fit``:
    its further keywords (``jump_regime``, ``long``, ``jump_min``, ...)."""
    return TailLaw.fit([s.close for s in tuning], [s.low for s in tuning], u=u, fast=fast, slow=slow,
                       label=f"{'+'.join(s.symbol for s in tuning)} {sum(len(s) - 1 for s in tuning)} bars", **fit)


@dataclass
class LearnedModel:
    """A trained bundle (``keeper.backtest.training.load_model``): its model's ``predict_proba`` on the
    features of ``keeper.risk.features``. The model is trained for one horizon: ``horizon_hours``
    passed to :meth:`prob` must match the bundle's."""

    bundle: object

    def prepare(self, series: PriceSeries) -> np.ndarray:
        from keeper.risk.features import market_features
        return market_features(series.t, series.close, series.high, series.low, step=series.step)

    def prob(self, market: np.ndarray, distance: np.ndarray, horizon_hours: float) -> np.ndarray:
        from keeper.risk.features import FEATURE_NAMES, assemble
        n, g = distance.shape
        rows = np.repeat(np.arange(n), g)
        X = assemble(market, rows, distance.ravel(), int(horizon_hours))
        b = self.bundle
        model: Any = b["model"] if isinstance(b, dict) else getattr(b, "model", b)  # an sklearn-like estimator
        trained_h = getattr(model, "horizon_hours", None)
        if trained_h is not None and int(trained_h) != int(horizon_hours):
            raise ValueError(f"the learned model is for a {trained_h} h horizon, not {horizon_hours} h")
        names = list(getattr(model, "feature_names", FEATURE_NAMES))
        X = X[:, [FEATURE_NAMES.index(c) for c in names]]
        ok = np.all(np.isfinite(X), axis=1)
        p = np.ones(len(X))                                       # warm-up rows: demand the most
        if ok.any():
            q = np.asarray(model.predict_proba(X[ok]))
            p[ok] = q[:, 1] if q.ndim == 2 else q                 # sklearn (n, 2) or LearnedPLiq (n,)
        return p.reshape(n, g)
