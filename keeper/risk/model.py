"""The risk model: P(liquidation within the horizon) of one position — the one object the daemon,
``plan``, ``rebalance``, ``stress``, the backtests and the benchmarks all ask.

Pure: no web3, no store, no clock. A model is a *law* (``keeper.risk.laws``: how a factor moves,
fitted on history) plus a *market* (``keeper.risk.market``: each asset's vol now, correlations, stable
legs) plus a horizon. Kinds (config ``policy.model``):

* ``tail``: the fitted Student-t + jumps law on the position's joint factor (``keeper.risk.joint``);
* ``analytic``: the lognormal (Gaussian) law on the same factor, for comparison;
* ``mc``: Monte Carlo paths of every asset jointly (``keeper.risk.mc_model``) — verification and
  stress; slow for the planner's searches;
* ``learned``: a ``keeper train`` bundle (``keeper.risk.learned_model``).

Every model explains itself (``describe``: kind, horizon, law, each asset's vol and where it came
from) and lists its inputs (``inputs``) for ``plan --json``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from keeper.domain import Position
from keeper.risk.joint import Factor, reduce_position
from keeper.risk.laws import HOURS_PER_YEAR, GaussLaw, Law
from keeper.risk.market import AssetState, Market

KINDS = ("tail", "analytic", "mc", "learned")


@runtime_checkable
class RiskModel(Protocol):
    # read-only members: the models are frozen dataclasses
    @property
    def kind(self) -> str: ...

    @property
    def horizon_hours(self) -> float: ...

    def p_liq(self, position: Position) -> float:
        """P(liquidated within the horizon), in [0, 1]."""
        ...

    def describe(self) -> str:
        """Which forecast, with which inputs: attached to every decision."""
        ...

    def with_lead(self, hours: float) -> RiskModel:
        """The same model over ``horizon + hours`` (protection that lands ``hours`` late)."""
        ...

    def inputs(self) -> dict[str, Any]:
        """``{"model", "horizon_hours", "vols": {symbol: {"annual", "source"}}}``."""
        ...

    def gap_levels(self, position: Position, epsilon: float, target_gap: float,
                   release_gap: float) -> tuple[float, float] | None:
        """(target P, release P) for a policy with price-move bands (``gap_levels``), or None when
        the position has no factor to measure them on."""
        ...


def factor_p(law: Law, f: Factor | float, horizon_hours: float) -> float:
    """The law's P for a reduced position (a fixed P passes through)."""
    if not isinstance(f, Factor):
        return f
    x = f.x - f.debt_convexity * horizon_hours
    return law.prob_scalar(x, f.sigma, horizon_hours, f.jump_exposure, f.extra)


@dataclass(frozen=True)
class LawRisk:
    """A law on the position's joint factor: ``tail`` or ``analytic`` by the law's kind.

    ``margin`` (>= 1) multiplies P (a what-if knob for stress and tests; 1 in production)."""

    law: Law
    market: Market = field(hash=False)
    horizon_hours: float = 24.0
    margin: float = 1.0
    source: str = ""  # where the law's parameters came from (a params file, a start-up fit)

    def __post_init__(self) -> None:
        if not self.horizon_hours > 0:
            raise ValueError("horizon_hours must be > 0")
        if self.margin < 1.0:
            raise ValueError("margin must be >= 1 (it only adds caution)")

    @classmethod
    def lognormal(cls, horizon_vols: Mapping[str, float], horizon_hours: float = 24.0, *,
                  corr: Mapping[tuple[str, str], float] | None = None, margin: float = 1.0,
                  source: str = "given vols") -> LawRisk:
        """The analytic model on vols given over the horizon (what-ifs, tests)."""
        k = 1.0 / math.sqrt(horizon_hours)
        assets = {s: AssetState(v * k, source) for s, v in horizon_vols.items()}
        return cls(GaussLaw(), Market(assets, dict(corr or {})), horizon_hours, margin)

    @classmethod
    def from_annual(cls, law: Law, annual_vols: Mapping[str, float], horizon_hours: float = 24.0, *,
                    corr: Mapping[tuple[str, str], float] | None = None, source: str = "given vols") -> LawRisk:
        k = 1.0 / math.sqrt(HOURS_PER_YEAR)
        assets = {s: AssetState(v * k, source) for s, v in annual_vols.items()}
        return cls(law, Market(assets, dict(corr or {})), horizon_hours)

    @property
    def kind(self) -> str:
        return self.law.kind

    def p_liq(self, position: Position) -> float:
        p = factor_p(self.law, reduce_position(position, self.market), self.horizon_hours)
        return min(1.0, self.margin * p)

    def with_lead(self, hours: float) -> LawRisk:
        return self if hours <= 0 else replace(self, horizon_hours=self.horizon_hours + hours)

    def p_shifted(self, position: Position) -> Callable[[float], float] | None:
        """P of ``position`` with its factor's distance to liquidation moved by ``dt`` (the factor's vol
        and exposures kept): ``p_liq`` itself at ``dt`` = 0, and along a sizing's axis close to
        ``p_liq`` of the position an action leaves (exact while the action keeps the factor's mix, as a
        repayment of a stable debt or more of a single collateral does). The sizing searches solve it
        for their first proposal (``keeper.plan.sizing``); None without a factor."""
        f = reduce_position(position, self.market)
        if not isinstance(f, Factor):
            return None
        law, h, margin = self.law, self.horizon_hours, self.margin
        x0 = f.x - f.debt_convexity * h

        def at(dt: float) -> float:
            return min(1.0, margin * law.prob_scalar(x0 + dt, f.sigma, h, f.jump_exposure, f.extra))

        return at

    def gap_levels(self, position: Position, epsilon: float, target_gap: float,
                   release_gap: float) -> tuple[float, float] | None:
        f = reduce_position(position, self.market, shape=True)
        return gap_levels(self.law, f, self.horizon_hours, epsilon, target_gap, release_gap)

    def with_market(self, market: Market) -> LawRisk:
        return replace(self, market=market)

    def describe(self) -> str:
        text = f"{self.kind} model, {self.horizon_hours:g}h: {self.law.describe()}"
        if self.source:
            text += f" [{self.source}]"
        if self.margin != 1.0:
            text += f", x{self.margin:g}"
        return f"{text}; joint factor; {self.market.describe()}"

    def inputs(self) -> dict[str, Any]:
        return {"model": self.kind, "horizon_hours": self.horizon_hours, "vols": self.market.vols(),
                "law": self.law.to_dict()}


def gap_levels(law: Law, f: Factor | float, horizon_hours: float, epsilon: float, target_gap: float,
               release_gap: float) -> tuple[float, float] | None:
    """A policy with price-move bands, as the backtests' ``RiskPolicy(target_gap=, release_gap=)``:
    the trigger is the factor's log distance ``x_eps`` at which P = ``epsilon``; a protective action
    lands a log move ``target_gap`` further (``x_eps + target_gap``), and excess is released only
    beyond another ``release_gap``. Returned as the P of those two distances for this position's
    factor (its vol, jump exposure and regime), so the planner's P searches serve both kinds of bands."""
    if not isinstance(f, Factor):
        return None
    h = horizon_hours

    def p(x: float) -> float:
        return law.prob_scalar(x - f.debt_convexity * h, f.sigma, h, f.jump_exposure, f.extra)

    lo, hi = 0.0, 5.0
    if p(hi) > epsilon:
        x_eps = hi
    else:
        for _ in range(60):  # P falls with the distance: bisection to ~1e-18
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if p(mid) > epsilon else (lo, mid)
        x_eps = hi
    return min(p(x_eps + target_gap), epsilon), p(x_eps + target_gap + release_gap)


def lead_scaled_x(x: float, horizon_hours: float, lead_hours: float) -> float:
    """A log distance over ``horizon + lead`` expressed on a ``horizon`` scale (Brownian scaling):
    for a model whose horizon is fixed (a learned bundle)."""
    return x * math.sqrt(horizon_hours / (horizon_hours + lead_hours))
