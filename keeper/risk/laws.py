"""Single-factor laws: P(a log value falls by ``x`` within ``h`` hours), given the market state.

Every risk model of the keeper reduces a position to one factor (``keeper.risk.joint``: the log
ratio of its weighted collateral to its debt, or a perp's mark) and asks a law how likely that
factor is to fall ``x`` (a log distance, > 0) within the horizon. The backtests ask the same law
about a single asset's distance to a liquidation price. So the law is the one place the product's
and the benchmarks' probabilities come from.

A law has two halves, both pure (numpy/scipy, no clock, no I/O):

* ``state(closes, lows)``: a causal per-bar state of one asset from its hourly bars, shape (n, S).
  Column 0 is always the hourly vol forecast for the hour after each close; further columns are
  law-specific (regime features). Row ``t`` uses bars ``0..t`` only.
* ``prob(x, state, h, jump_exposure)``: vectorised P; ``state[..., 0]`` broadcasts against ``x``.
  ``prob_scalar`` is the same formula for one value (the planner calls it thousands of times per
  tick; scipy's distribution objects cost ~50 us a call, the special functions ~1 us).

``jump_exposure``: how far the factor moves per unit of a common jump (1 for one asset; for a
portfolio the larger of its collateral and debt weights, see ``joint``).

Laws
----
* ``GaussLaw`` ("analytic"): driftless Brownian first passage on an EWMA vol (reflection
  principle, ``2 Phi(-x / (sigma sqrt h))``): the thin-tailed baseline.
* ``TailLaw`` ("tail"): ``P = 1 - (1 - P_diffusion)(1 - P_jump)``. Diffusion: the reflection
  principle with a unit-variance Student-t (``nu``) in place of the normal, on the larger of a fast
  and a slow EWMA vol (the slow one remembers a storm after the fast one calms). Jumps: drops of the
  hour's low below the last close in excess of ``u`` arrive at ``lam_u`` per hour with
  generalised-Pareto sizes (``xi``, ``beta``), independent of the vol: the calm-market crashes.
  Fitted on a tuning window only (:meth:`TailLaw.fit`).

  Regime-conditioned jumps (``jump_vol`` or ``jump_ratio`` non-zero): the jump intensity becomes
  ``lam_u * m`` with ``m = (fast / jump_ref) ** jump_vol * (fast / long) ** jump_ratio``, clipped
  to ``[jump_min, jump_max]`` (``jump_max`` 0: no cap), where ``fast`` is the fast-EWMA hourly vol
  and ``long`` an EWMA(``long``) vol (its ratio to the fast one is a vol-of-vol: a market whose vol
  just jumped). The sizes stay GPD (in the tuning data the share of large drops among the drops
  beyond ``u`` barely depends on the vol; their rate does, by ~2 orders of magnitude). The state
  then has three columns ``(sigma, fast, long)``; ``prob_scalar``'s ``extra`` is ``(fast, long)``
  (without extras, or with a one-column state, ``fast = long = sigma``). :meth:`TailLaw.fit` fits
  the exponents by Poisson maximum likelihood of the drops beyond ``u`` on the state of the bar
  before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from scipy import special

from keeper.risk.volatility import ewma_variance, log_returns

HOURS_PER_YEAR = 24 * 365
MIN_HOURLY_VAR = 1e-12
MIN_JUMPS_TO_FIT = 10  # fewer drops beyond u: the default GPD shape (too few to fit one)


def next_hour_vol(close: np.ndarray, lam: float) -> np.ndarray:
    """sigma[t]: the EWMA forecast for the hour after close ``t`` (uses returns up to bar ``t``);
    one value per close. A single close gives the floor ``sqrt(MIN_HOURLY_VAR)``."""
    r = log_returns(np.asarray(close, dtype=float))
    v = ewma_variance(np.r_[r, 0.0], lam)          # v[i] uses r[0..i-1] = returns up to close i
    sigma: np.ndarray = np.sqrt(np.maximum(v, MIN_HOURLY_VAR))
    return sigma


def bar_drops(close: np.ndarray, low: np.ndarray) -> np.ndarray:
    """log(close[t-1] / low[t]) for t >= 1: the worst fall inside each hour from the last close."""
    drops: np.ndarray = np.log(np.asarray(close, dtype=float)[:-1] / np.asarray(low, dtype=float)[1:])
    return drops


class Law(Protocol):
    @property
    def kind(self) -> str: ...

    def state(self, close: np.ndarray, low: np.ndarray | None = None) -> np.ndarray: ...

    def prob(self, x: npt.ArrayLike, state: npt.ArrayLike, horizon_hours: float,
             jump_exposure: npt.ArrayLike = 1.0) -> np.ndarray: ...

    def prob_scalar(self, x: float, sigma: float, horizon_hours: float, jump_exposure: float = 1.0,
                    extra: Sequence[float] = ()) -> float: ...

    def describe(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class GaussLaw:
    """Driftless Brownian first passage on the EWMA(``lam``) hourly vol."""

    lam: float = 0.94
    fitted_on: str = "defaults"
    kind: str = field(default="analytic", init=False)

    def state(self, close: np.ndarray, low: np.ndarray | None = None) -> np.ndarray:
        return next_hour_vol(close, self.lam)[:, None]

    def prob(self, x: npt.ArrayLike, state: npt.ArrayLike, horizon_hours: float,
             jump_exposure: npt.ArrayLike = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        s = np.asarray(state, dtype=float)[..., 0] * math.sqrt(horizon_hours)
        with np.errstate(divide="ignore", invalid="ignore"):
            p = special.erfc(x / (s * math.sqrt(2.0)))
        p = np.where(s > 0, p, (x <= 0).astype(float))
        return np.where(x <= 0, 1.0, np.clip(p, 0.0, 1.0))

    def prob_scalar(self, x: float, sigma: float, horizon_hours: float, jump_exposure: float = 1.0,
                    extra: Sequence[float] = ()) -> float:
        if x <= 0:
            return 1.0
        s = sigma * math.sqrt(horizon_hours)
        if not s > 0:
            return 0.0
        return min(1.0, math.erfc(x / (s * math.sqrt(2.0))))

    def describe(self) -> str:
        return f"lognormal first passage on EWMA({self.lam:g}) vols"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "lam": self.lam, "fitted_on": self.fitted_on}


@dataclass(frozen=True)
class TailLaw:
    """Student-t diffusion plus generalised-Pareto jumps, optionally at a regime-dependent rate
    (module doc)."""

    fast: float = 0.94
    slow: float = 0.0          # > 0: also an EWMA with this lambda, vol = max(fast, slow)
    nu: float = 4.0
    u: float = 0.03
    lam_u: float = 1e-3
    xi: float = 0.2
    beta: float = 0.02
    fitted_on: str = "defaults"
    long: float = 0.0          # EWMA lambda of the long vol in the vol-of-vol ratio (needed by jump_ratio)
    jump_vol: float = 0.0      # exponent of fast / jump_ref in the jump intensity
    jump_ratio: float = 0.0    # exponent of fast / long in the jump intensity
    jump_ref: float = 0.01     # hourly vol at which the intensity is lam_u (with fast = long)
    jump_min: float = 0.0      # the intensity multiplier's floor
    jump_max: float = 0.0      # and cap (0: none)
    kind: str = field(default="tail", init=False)

    def __post_init__(self) -> None:
        if not self.nu > 2:
            raise ValueError("nu must be > 2 (a finite variance)")
        if self.lam_u < 0 or self.beta <= 0 or self.u < 0:
            raise ValueError("need lam_u >= 0, beta > 0, u >= 0")
        for lam in (self.fast,) + ((self.slow,) if self.slow else ()) + ((self.long,) if self.long else ()):
            if not 0 < lam < 1:
                raise ValueError("EWMA lambdas must be in (0, 1)")
        if self.jump_ratio and not self.long:
            raise ValueError("jump_ratio needs a long EWMA lambda")
        if self.jump_ref <= 0 or self.jump_min < 0 or self.jump_max < 0 or (
                self.jump_max and self.jump_max < self.jump_min):
            raise ValueError("need jump_ref > 0 and 0 <= jump_min <= jump_max (or jump_max 0)")

    @property
    def regime(self) -> bool:
        """True when the jump intensity depends on the state (three state columns)."""
        return bool(self.jump_vol or self.jump_ratio)

    @classmethod
    def fit(cls, closes: Sequence[np.ndarray], lows: Sequence[np.ndarray], *, u: float = 0.03,
            fast: float = 0.94, slow: float = 0.0, warmup: int = 200, label: str = "",
            jump_regime: str = "", long: float = 0.0, jump_min: float = 0.0,
            jump_max: float = 0.0, nu: float | None = None, exponent_scale: float = 1.0) -> TailLaw:
        """Maximum-likelihood ``nu`` of the vol-standardised hourly returns (after ``warmup``
        hours), the hourly rate of bar drops beyond ``u`` and their generalised-Pareto excess sizes,
        over every given series (pooled).

        ``jump_regime``: ``""`` (a constant rate), ``"vol"``, ``"ratio"`` or ``"vol+ratio"``: the
        rate's exponents on the fast vol (``jump_ref``: its geometric mean over the fit) and on the
        fast / long vol ratio (``long`` defaults to 0.999), by Poisson maximum likelihood of the
        drops beyond ``u`` given the state at the close before, multiplied by ``exponent_scale``
        (< 1 shrinks them towards a constant rate: a choice made on tuning-period backtests, since
        the quantile the policy needs is set by the worst drops of each regime, which depend on the
        vol less than the rate of moderate drops does). ``jump_min``/``jump_max`` are carried into
        the law as given. ``nu``: a fixed diffusion shape instead of its maximum-likelihood value
        (which also absorbs the jumps the jump term models)."""
        if jump_regime not in ("", "vol", "ratio", "vol+ratio"):
            raise ValueError(f"unknown jump_regime {jump_regime!r} (known: vol, ratio, vol+ratio)")
        if "ratio" in jump_regime and not long:
            long = 0.999
        z_all, drops, lf, lr = [], [], [], []
        for c, lo in zip(closes, lows):
            c = np.asarray(c, dtype=float)
            f = next_hour_vol(c, fast)
            sig = np.maximum(f, next_hour_vol(c, slow)) if slow else f
            r = log_returns(c)
            z_all.append(r[warmup:] / sig[:-1][warmup:])
            drops.append(bar_drops(c, lo)[warmup:])            # drop in bar t+1 given the state at close t
            lf.append(np.log(f[:-1][warmup:]))
            lr.append(np.log(f[:-1][warmup:] / next_hour_vol(c, long)[:-1][warmup:]) if long else
                      np.zeros(max(len(c) - 1 - warmup, 0)))
        z = np.concatenate(z_all)
        if len(z) < 100:
            raise ValueError(f"too little history to fit the tail law: {len(z)} hourly returns")
        # scipy.stats is imported where it is used: it costs about half a second, which every
        # CLI command that only evaluates a law would pay at start-up
        from scipy import stats

        if nu is None:
            nu = float(stats.t.fit(z, floc=0.0)[0])
            nu = min(max(nu, 2.2), 30.0)
        d = np.concatenate(drops)
        exc = d[d > u] - u
        label = label or f"{len(d)} bars"
        regime: dict[str, float] = {"long": long, "jump_min": jump_min, "jump_max": jump_max}
        lam_u = max(len(exc), 1) / len(d)
        if jump_regime and len(exc) >= MIN_JUMPS_TO_FIT:
            log_f, log_r = np.concatenate(lf), np.concatenate(lr)
            ref = float(np.exp(np.mean(log_f)))
            cols = [np.ones_like(log_f)]
            if "vol" in jump_regime:
                cols.append(log_f - math.log(ref))
            if "ratio" in jump_regime:
                cols.append(log_r)
            X = np.column_stack(cols)
            coef = _poisson_fit(X, (d > u).astype(float))
            slopes = coef[1:] * exponent_scale
            # the intercept that keeps the fitted number of drops with the shrunk exponents
            lam_u = float(np.sum(d > u) / np.exp(X[:, 1:] @ slopes).sum())
            k = 0
            if "vol" in jump_regime:
                regime["jump_vol"] = float(slopes[k])
                k += 1
            if "ratio" in jump_regime:
                regime["jump_ratio"] = float(slopes[k])
            regime["jump_ref"] = ref
            label += f"; jump rate ~ {jump_regime}" + (
                f" (exponents x {exponent_scale:g})" if exponent_scale != 1 else "")
        if len(exc) < MIN_JUMPS_TO_FIT:  # too few to fit a shape: the default shape, at least one jump's rate
            return cls(fast, slow, nu, u, lam_u, cls.xi, cls.beta,
                       fitted_on=f"{label}; {len(exc)} drops beyond {u:.0%}: default jump sizes", **regime)
        xi, _, beta = stats.genpareto.fit(exc, floc=0.0)
        return cls(fast, slow, nu, u, lam_u, float(xi), float(beta), fitted_on=label, **regime)

    @property
    def tag(self) -> str:
        jumps = ""
        if not self.lam_u:
            jumps = "/nojump"
        elif self.regime:
            jumps = (f"/jv{self.jump_vol:.2g}" if self.jump_vol else "") + \
                    (f"/jr{self.jump_ratio:.2g}" if self.jump_ratio else "") + \
                    (f"/jmin{self.jump_min:g}" if self.jump_min else "") + \
                    (f"/jmax{self.jump_max:g}" if self.jump_max else "")
        return f"t{self.nu:.1f}" + (f"/slow{self.slow:g}" if self.slow else "") + jumps

    def state(self, close: np.ndarray, low: np.ndarray | None = None) -> np.ndarray:
        f = next_hour_vol(close, self.fast)
        sig = np.maximum(f, next_hour_vol(close, self.slow)) if self.slow else f
        if not self.regime:
            return sig[:, None]
        lng = next_hour_vol(close, self.long) if self.long else f
        return np.column_stack([sig, f, lng])

    def _multiplier(self, fast: np.ndarray, long: np.ndarray) -> np.ndarray:
        """The jump intensity's multiplier at fast / long vols (arrays)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.ones(np.broadcast(fast, long).shape)
            if self.jump_vol:
                m = m * (np.maximum(fast, MIN_VOL) / self.jump_ref) ** self.jump_vol
            if self.jump_ratio:
                m = m * (np.maximum(fast, MIN_VOL) / np.maximum(long, MIN_VOL)) ** self.jump_ratio
        clipped: np.ndarray = np.clip(m, self.jump_min, self.jump_max if self.jump_max else np.inf)
        return clipped

    def _multiplier_scalar(self, fast: float, long: float) -> float:
        m = 1.0
        if self.jump_vol:
            m *= (max(fast, MIN_VOL) / self.jump_ref) ** self.jump_vol
        if self.jump_ratio:
            m *= (max(fast, MIN_VOL) / max(long, MIN_VOL)) ** self.jump_ratio
        m = max(m, self.jump_min)
        return min(m, self.jump_max) if self.jump_max else m

    def prob(self, x: npt.ArrayLike, state: npt.ArrayLike, horizon_hours: float,
             jump_exposure: npt.ArrayLike = 1.0) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        st = np.asarray(state, dtype=float)
        s = st[..., 0] * math.sqrt(horizon_hours)
        scale = math.sqrt(self.nu / (self.nu - 2.0))             # unit-variance t
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(s > 0, x / s * scale, np.inf)
        p_diff = np.minimum(1.0, 2.0 * special.stdtr(self.nu, -z))
        j = np.asarray(jump_exposure, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(j > 0, x / j, np.inf)
        from scipy import stats  # on first use (see fit)

        tail = stats.genpareto.sf(np.maximum(y - self.u, 0.0), self.xi, scale=self.beta)
        rate: float | np.ndarray = self.lam_u
        if self.regime:
            f = st[..., 1] if st.shape[-1] > 2 else st[..., 0]
            lng = st[..., 2] if st.shape[-1] > 2 else st[..., 0]
            rate = self.lam_u * self._multiplier(f, lng)
        p_jump = -np.expm1(-rate * horizon_hours * tail)
        p = 1.0 - (1.0 - p_diff) * (1.0 - p_jump)
        return np.where(x <= 0, 1.0, p)

    def _gpd_sf(self, y: float) -> float:
        if y <= 0:
            return 1.0
        if self.xi == 0:
            return math.exp(-y / self.beta)
        base = 1.0 + self.xi * y / self.beta
        if base <= 0:                     # beyond the upper end point (xi < 0)
            return 0.0
        sf: float = base ** (-1.0 / self.xi)
        return sf

    def prob_scalar(self, x: float, sigma: float, horizon_hours: float, jump_exposure: float = 1.0,
                    extra: Sequence[float] = ()) -> float:
        if x <= 0:
            return 1.0
        s = sigma * math.sqrt(horizon_hours)
        if s > 0:
            z = x / s * math.sqrt(self.nu / (self.nu - 2.0))
            p_diff = min(1.0, 2.0 * float(special.stdtr(self.nu, -z)))
        else:
            p_diff = 0.0
        tail = self._gpd_sf(x / jump_exposure - self.u) if jump_exposure > 0 else 0.0
        rate = self.lam_u
        if self.regime:
            f, lng = (extra[0], extra[1]) if len(extra) >= 2 else (sigma, sigma)
            rate *= self._multiplier_scalar(f, lng)
        p_jump = -math.expm1(-rate * horizon_hours * tail)
        return min(1.0, 1.0 - (1.0 - p_diff) * (1.0 - p_jump))

    def describe(self) -> str:
        vol = f"max(EWMA {self.fast:g}, {self.slow:g})" if self.slow else f"EWMA {self.fast:g}"
        rate = f"{self.lam_u:.4f}/h"
        if self.regime:
            parts = ([f"(fast/{self.jump_ref:.4f})^{self.jump_vol:.2f}"] if self.jump_vol else []) + \
                    ([f"(fast/EWMA {self.long:g})^{self.jump_ratio:.2f}"] if self.jump_ratio else [])
            clip = f" clipped to [{self.jump_min:g}, {self.jump_max or float('inf'):g}]" if (
                self.jump_min or self.jump_max) else ""
            rate += " x " + " x ".join(parts) + clip
        return (f"Student-t({self.nu:.2f}) first passage on {vol} vols + jumps beyond {self.u:.0%} at "
                f"{rate}, GPD xi {self.xi:.3f} beta {self.beta:.4f}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **{k: v for k, v in asdict(self).items() if k != "kind"}}


MIN_VOL = math.sqrt(MIN_HOURLY_VAR)


def _poisson_fit(X: np.ndarray, y: np.ndarray, iters: int = 50) -> np.ndarray:
    """Coefficients of a Poisson regression with a log link (Newton's method with step halving);
    column 0 of ``X`` is the intercept."""
    beta = np.zeros(X.shape[1])
    beta[0] = math.log(max(y.mean(), 1e-12))

    def loglik(b: np.ndarray) -> float:
        eta = X @ b
        return float(np.dot(y, eta) - np.exp(eta).sum())

    ll = loglik(beta)
    for _ in range(iters):
        mu = np.exp(X @ beta)
        grad = X.T @ (y - mu)
        hess = (X * mu[:, None]).T @ X
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(beta)), grad)
        t = 1.0
        while True:
            cand = beta + t * step
            new = loglik(cand)
            if new >= ll - 1e-12:
                break
            t /= 2
            if t < 1e-6:
                return beta                        # no ascent left: converged as far as it goes
        beta, done = cand, abs(new - ll) < 1e-10 * max(1.0, abs(ll))
        ll = new
        if done:
            break
    return beta


LAWS: dict[str, type[TailLaw] | type[GaussLaw]] = {"tail": TailLaw, "analytic": GaussLaw}


def law_from_dict(data: Mapping[str, Any]) -> Law:
    """The inverse of ``to_dict``; unknown kinds or fields raise ValueError naming them."""
    kind = data.get("kind")
    cls = LAWS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown law kind {kind!r} (known: {', '.join(LAWS)})")
    fields = {k: v for k, v in data.items() if k != "kind"}
    allowed = set(cls.__dataclass_fields__) - {"kind"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"unknown {kind} law parameter(s): {', '.join(sorted(unknown))}")
    return cls(**fields)
