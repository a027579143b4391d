"""The ``learned`` risk model: a ``keeper train`` bundle deciding in the product, with the tail model
as its fallback.

Pure: numpy and the bundle's scikit-learn estimator (loaded by ``keeper.backtest.training.load_model``
at the edge). A bundle is trained for one horizon and one feature list: :func:`check_bundle` refuses
one whose horizon differs from ``policy.horizon_hours`` or whose features this code does not compute.

How a position is asked: it is reduced to its joint factor (``keeper.risk.joint``); the bundle sees
the factor's *driver* (the asset contributing most of its variance) — that asset's market features
now (``keeper.risk.features``) and a distance with the same vol-scaled size as the factor's
(``x * sigma_driver / sigma_factor``): an approximation for multi-asset positions, exact for one
asset. A short exposure (the driver owed, or a short perp) is asked on the ``1/price`` series.
Where the driver's features cannot be computed (less than a month of hourly history, a gap), the
fallback (the tail model) answers and :attr:`LearnedRisk.fallbacks` names the asset, so the daemon
can alert. A lead beyond the bundle's horizon is folded into the distance by Brownian scaling."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keeper.domain import Position
from keeper.risk.features import FEATURE_NAMES, WARMUP_BARS, assemble, flip_side, market_features
from keeper.risk.joint import Factor, reduce_position
from keeper.risk.market import History
from keeper.risk.model import LawRisk, lead_scaled_x


class BundleMismatch(ValueError):
    pass


def check_bundle(bundle: Mapping[str, Any], horizon_hours: float) -> None:
    model = bundle["model"]
    h = int(getattr(model, "horizon_hours", bundle.get("horizon_hours", -1)))
    if h != int(horizon_hours) or float(h) != float(horizon_hours):
        raise BundleMismatch(f"the learned model is for a {h} h horizon, policy.horizon_hours is {horizon_hours:g}")
    names = list(getattr(model, "feature_names", bundle.get("feature_names", ())))
    if not names or any(n not in FEATURE_NAMES for n in names):
        raise BundleMismatch(f"the learned model uses features this code does not compute: "
                             f"{sorted(set(names) - set(FEATURE_NAMES)) or 'none listed'}")


def feature_rows(history: Mapping[str, History]) -> dict[str, dict[str, np.ndarray]]:
    """Per symbol, the market-feature row now for a long and for a short exposure (only for symbols
    with at least ``WARMUP_BARS`` bars and times)."""
    out = {}
    for sym, h in history.items():
        if h.t is None or len(h.close) < WARMUP_BARS:
            continue
        close = np.asarray(h.close, dtype=float)
        low = close if h.low is None else np.asarray(h.low, dtype=float)
        high = np.maximum(close, np.r_[close[:1], close[:-1]]) if h.low is None else np.maximum(close, low)
        t = np.asarray(h.t, dtype=np.int64)
        long_row = market_features(t, close, high, low)[-1]
        fc, fh, fl = flip_side(close, high, low)
        short_row = market_features(t, fc, fh, fl)[-1]
        out[sym] = {"long": long_row, "short": short_row}
    return out


@dataclass
class LearnedRisk:
    bundle: Mapping[str, Any] = field(repr=False)
    fallback: LawRisk
    rows: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict, repr=False)
    lead_hours: float = 0.0
    source: str = ""
    kind: str = field(default="learned", init=False)
    fallbacks: set[str] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        check_bundle(self.bundle, self.fallback.horizon_hours)
        self._model = self.bundle["model"]
        self._names = list(getattr(self._model, "feature_names", FEATURE_NAMES))
        self._cols = [FEATURE_NAMES.index(c) for c in self._names]

    @property
    def horizon_hours(self) -> float:
        return self.fallback.horizon_hours + self.lead_hours

    def p_liq(self, position: Position) -> float:
        market = self.fallback.market
        f = reduce_position(position, market)
        if not isinstance(f, Factor):
            return f
        h = int(self.fallback.horizon_hours)
        w_sign = self._driver_sign(position, f)
        row = self.rows.get(f.driver, {}).get("short" if w_sign < 0 else "long")
        if row is None or not np.all(np.isfinite(row)) or f.sigma <= 0:
            self.fallbacks.add(f.driver or "?")
            return self.fallback.with_lead(self.lead_hours).p_liq(position)
        x = f.x - f.debt_convexity * self.horizon_hours
        if self.lead_hours > 0:
            x = lead_scaled_x(x, h, self.lead_hours)
        x_driver = x * market.state(f.driver).sigma / f.sigma
        if x_driver <= 0:
            return 1.0
        X = assemble(row[None, :], np.array([0]), np.array([-math.expm1(-x_driver)]), h)[:, self._cols]
        q = np.asarray(self._model.predict_proba(X))
        p = float(q[0, 1] if q.ndim == 2 else q[0])
        return min(1.0, max(0.0, p))

    @staticmethod
    def _driver_sign(position: Position, f: Factor) -> float:
        if position.perp is not None:
            return 1.0 if position.perp.is_long else -1.0
        from keeper.risk.joint import exposures_of
        ex = exposures_of(position)
        return 1.0 if ex is None or ex[1].get(f.driver, 0.0) >= 0 else -1.0

    def with_lead(self, hours: float) -> LearnedRisk:
        if hours <= 0:
            return self
        out = LearnedRisk(self.bundle, self.fallback, self.rows, self.lead_hours + hours, self.source)
        out.fallbacks = self.fallbacks  # shared: the daemon reads one set per tick
        return out

    def gap_levels(self, position: Position, epsilon: float, target_gap: float,
                   release_gap: float) -> tuple[float, float] | None:
        """The fallback law's levels (the bundle has no distance to invert; an approximation)."""
        return self.fallback.with_lead(self.lead_hours).gap_levels(position, epsilon, target_gap, release_gap)

    def describe(self) -> str:
        return (f"learned model, {self.horizon_hours:g}h: {self.source or 'bundle'} on each position's driver "
                f"asset (fallback: {self.fallback.kind}); {self.fallback.market.describe()}")

    def inputs(self) -> dict[str, Any]:
        return {"model": self.kind, "horizon_hours": self.horizon_hours, "vols": self.fallback.market.vols(),
                "bundle": self.source, "fallback": self.fallback.kind}
