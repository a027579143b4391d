"""The ``mc`` risk model: Monte Carlo paths of every asset jointly, under the same law and market as
the closed-form models — for verification (does the joint factor's closed form hold?), for
``keeper stress`` and, slowly, as the deciding model.

Pure: numpy only. Paths over ``horizon_hours`` in ``steps_per_hour`` steps, log returns per asset:

* a Brownian motion per asset with the market's hourly vol and correlation (``Sigma``'s symmetric
  square root, so a correlation of exactly 1 is fine), driftless in log;
* a Student-t law (``nu`` finite) scales each *path's* vol by ``sqrt((nu - 2) / chi2_nu)``, shared by
  the assets (tail dependence): the horizon return is then exactly the law's unit-variance t, and
  the first passage of that path is the law's diffusion term;
* jumps (a ``TailLaw`` with ``lam_u > 0``): market-wide gaps arrive at the law's rate per hour
  (times its regime multiplier, the largest among the assets) downwards and, separately, at the same
  rate upwards (the law applies its fitted drops to whichever direction hurts, so the simulation
  does too), at a uniform step, sized ``u + GPD(xi, beta)`` in log, moving every volatile asset
  together. Several jumps in one path add up, where the closed form counts the single largest: with
  jumps, the paths' P is above the closed form's (``bench/BENCHMARKS.md`` records by how much).

Stable legs stay fixed (they are not simulated). Margins are checked at the end of each step
(``keeper.risk.probability.monte_carlo_liquidation``): discrete monitoring, so P is slightly below
the continuous closed form (the tests correct for it with Broadie-Glasserman-Kou's shift).
Common random numbers: paths depend only on (seed, symbols, correlations), cached per model, so a
planner's search over amounts is deterministic."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keeper.domain import Position
from keeper.risk.joint import exposures_of
from keeper.risk.laws import Law, TailLaw
from keeper.risk.market import Market
from keeper.risk.probability import exposures, monte_carlo_liquidation


def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    vals, vecs = np.linalg.eigh(c)
    root: np.ndarray = (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T
    return root


@dataclass
class McRisk:
    law: Law
    market: Market = field(hash=False)
    horizon_hours: float = 24.0
    n_paths: int = 20_000
    steps_per_hour: int = 4
    seed: int = 0
    source: str = ""
    kind: str = field(default="mc", init=False)
    _cache: dict[tuple[tuple[str, ...], bytes], np.ndarray] = field(default_factory=dict, init=False, repr=False)

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.horizon_hours * self.steps_per_hour))

    def corr_matrix(self, symbols: tuple[str, ...], signs: tuple[float, ...] | None = None) -> np.ndarray:
        """Measured correlations; an unknown pair gets the riskier end of [0, 1] for exposures of
        ``signs`` (1 when they have the same sign, else 0), or 1 without signs."""
        n = len(symbols)
        c = np.eye(n)
        for i in range(n):
            for j in range(i + 1, n):
                r = self.market.rho(symbols[i], symbols[j])
                if r is None:
                    r = 1.0 if signs is None or signs[i] * signs[j] > 0 else 0.0
                c[i, j] = c[j, i] = r
        return c

    def paths(self, symbols: tuple[str, ...], corr: np.ndarray | None = None) -> np.ndarray:
        """(n_paths, steps, assets) log returns (cached per symbols and correlation)."""
        corr = self.corr_matrix(symbols) if corr is None else corr
        key = (symbols, corr.round(12).tobytes())
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rng = np.random.default_rng([self.seed, len(symbols)])
        n, steps, a = self.n_paths, self.steps, len(symbols)
        dt = self.horizon_hours / steps
        sig = np.array([self.market.state(s).sigma for s in symbols])
        z = rng.standard_normal((n, steps, a)) @ _sqrtm_psd(corr).T
        r: np.ndarray = z * (sig * math.sqrt(dt))
        nu = getattr(self.law, "nu", math.inf)
        if math.isfinite(nu):
            r *= np.sqrt((nu - 2.0) / rng.chisquare(nu, n))[:, None, None]
        if isinstance(self.law, TailLaw) and self.law.lam_u > 0:
            law = self.law
            rate = law.lam_u
            if law.regime:  # the regime's multiplier: the largest among the simulated assets (common jumps)
                mult = []
                for s in symbols:
                    st = self.market.state(s)
                    f, lng = (st.extra[0], st.extra[1]) if len(st.extra) >= 2 else (st.sigma, st.sigma)
                    mult.append(law._multiplier_scalar(f, lng))
                rate *= max(mult)
            for sign in (-1.0, 1.0):
                counts = rng.poisson(rate * self.horizon_hours, n)
                total = int(counts.sum())
                if total:
                    rows = np.repeat(np.arange(n), counts)
                    at = rng.integers(0, steps, total)
                    # GPD by inversion: beta / xi * (U^-xi - 1) (exponential when xi == 0)
                    u01 = rng.random(total)
                    size = (law.beta * -np.log(u01) if law.xi == 0
                            else law.beta / law.xi * (u01 ** -law.xi - 1.0))
                    np.add.at(r, (rows, at), (sign * (law.u + size))[:, None] * (sig > 0))
        self._cache[key] = r
        return r

    def p_liq(self, position: Position) -> float:
        ex = exposures_of(position)
        if ex is None:
            return 0.0
        now, e, _k = ex
        if now:
            return 1.0
        symbols = tuple(sorted(s for s, v in e.items() if v != 0 and self.market.state(s).sigma > 0))
        if not symbols:
            return 0.0
        corr = self.corr_matrix(symbols, tuple(math.copysign(1.0, e[s]) for s in symbols))
        res = monte_carlo_liquidation(exposures([position], symbols), self.paths(symbols, corr))
        return float(res.p[0])

    def with_lead(self, hours: float) -> McRisk:
        if hours <= 0:
            return self
        return McRisk(self.law, self.market, self.horizon_hours + hours, self.n_paths, self.steps_per_hour,
                      self.seed, self.source)

    def gap_levels(self, position: Position, epsilon: float, target_gap: float,
                   release_gap: float) -> tuple[float, float] | None:
        """The levels of the closed-form law on the same market (an approximation for paths)."""
        from keeper.risk.model import LawRisk
        return LawRisk(self.law, self.market, self.horizon_hours).gap_levels(position, epsilon, target_gap,
                                                                             release_gap)

    def with_market(self, market: Market) -> McRisk:
        return McRisk(self.law, market, self.horizon_hours, self.n_paths, self.steps_per_hour, self.seed,
                      self.source)

    def describe(self) -> str:
        text = (f"mc model, {self.horizon_hours:g}h: {self.n_paths} joint paths of {self.law.describe()}, "
                f"{self.steps_per_hour} steps/h, seed {self.seed}")
        return f"{text}{f' [{self.source}]' if self.source else ''}; {self.market.describe()}"

    def inputs(self) -> dict[str, Any]:
        return {"model": self.kind, "horizon_hours": self.horizon_hours, "vols": self.market.vols(),
                "law": self.law.to_dict(), "paths": self.n_paths}
