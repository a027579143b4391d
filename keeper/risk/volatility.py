"""Volatility forecasts: log returns, EWMA (RiskMetrics), realised vol, EWMA covariance, GARCH(1,1).

Pure: numpy and scipy only; no clock, no I/O. Every series is per period of the input (hourly
prices give hourly variances); scale by the number of steps yourself.

Conventions
-----------
* ``returns[i]`` is the log return from price ``i`` to price ``i + 1``.
* A *forecast* series has the same length as ``returns`` and its value at ``i`` uses returns
  ``0 .. i-1`` only (so it may be compared with ``returns[i] ** 2`` without look-ahead).
* EWMA (RiskMetrics): ``v[i] = lam * v[i-1] + (1 - lam) * r[i-1] ** 2``, zero mean.
* GARCH(1,1): ``r[t] = mu + e[t]``, ``e[t] = sqrt(h[t]) * z[t]``,
  ``h[t] = omega + alpha * e[t-1] ** 2 + beta * h[t-1]``, ``z`` i.i.d. with unit variance: a
  Student-t with ``nu`` degrees of freedom rescaled by ``sqrt((nu - 2) / nu)``, or a normal
  (``nu = inf``). Stationarity ``alpha + beta < 1`` is built into the parametrisation the
  optimiser works in, so every fit is stationary; it is capped at ``MAX_PERSISTENCE`` because on
  hourly crypto returns the likelihood keeps rising towards an integrated GARCH (alpha + beta -> 1).

Both recursions are first-order linear filters and are run with ``scipy.signal.lfilter`` (no Python
loop over time), which keeps a GARCH likelihood evaluation on 50,000 returns near a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

EWMA_WARMUP = 20  # returns averaged for the EWMA starting variance when none is given
MAX_PERSISTENCE = 0.9999  # fits cap alpha + beta here: hourly crypto otherwise drifts to IGARCH


def log_returns(prices: np.ndarray) -> np.ndarray:
    """Log returns along the first axis: ``log(p[1:] / p[:-1])`` (works for T or T x A arrays)."""
    p = np.asarray(prices, dtype=float)
    if p.shape[0] < 2:
        return np.empty((0, *p.shape[1:]))
    if np.any(p <= 0):
        raise ValueError("prices must be positive")
    return np.diff(np.log(p), axis=0)


def _first_order_filter(x: np.ndarray, coef: float, first: float) -> np.ndarray:
    """y[0] = first, y[i] = coef * y[i-1] + x[i-1] for i >= 1 (x has the length of y)."""
    n = len(x)
    if n == 0:
        return np.empty(0)
    out = np.empty(n)
    out[0] = first
    if n > 1:
        # scipy.signal (which imports scipy.stats) costs about half a second: imported on first use,
        # so a CLI command that never filters a price series does not pay for it at start-up
        from scipy import signal

        zi = np.array([coef * first])
        out[1:], _ = signal.lfilter([1.0], [1.0, -coef], x[:-1], zi=zi)
    return out


def ewma_variance(returns: np.ndarray, lam: float = 0.94, init: float | None = None) -> np.ndarray:
    """RiskMetrics EWMA variance forecasts; ``v[i]`` uses returns up to ``i - 1``.

    ``init`` is ``v[0]``; by default the mean square of the first ``EWMA_WARMUP`` returns (the only
    place the series looks ahead, and only to start)."""
    r = np.asarray(returns, dtype=float).ravel()
    if not 0.0 < lam < 1.0:
        raise ValueError("lam must be in (0, 1)")
    if len(r) == 0:
        return np.empty(0)
    if init is None:
        init = float(np.mean(r[:EWMA_WARMUP] ** 2))
    return _first_order_filter((1.0 - lam) * r * r, lam, float(init))


def ewma_vol(returns: np.ndarray, lam: float = 0.94) -> np.ndarray:
    """Square root of :func:`ewma_variance`."""
    vol: np.ndarray = np.sqrt(ewma_variance(returns, lam))
    return vol


def ewma_next_variance(returns: np.ndarray, lam: float = 0.94, init: float | None = None) -> float:
    """The EWMA forecast for the period after the last return (uses every return)."""
    r = np.asarray(returns, dtype=float).ravel()
    v = ewma_variance(r, lam, init)
    if len(v) == 0:
        return math.nan if init is None else float(init)
    return float(lam * v[-1] + (1.0 - lam) * r[-1] ** 2)


def realised_vol(returns: np.ndarray, window: int) -> np.ndarray:
    """Rolling standard deviation (ddof=1) of the last ``window`` returns *including* ``i``.

    NaN until the window fills (the first ``window - 1`` values)."""
    r = np.asarray(returns, dtype=float).ravel()
    if window < 2:
        raise ValueError("window must be >= 2")
    out = np.full(len(r), np.nan)
    if len(r) >= window:
        views = np.lib.stride_tricks.sliding_window_view(r, window)
        out[window - 1:] = views.std(axis=1, ddof=1)
    return out


def ewma_covariance(returns_2d: np.ndarray, lam: float = 0.94) -> tuple[np.ndarray, np.ndarray]:
    """Latest EWMA covariance and correlation (A x A) of zero-mean returns (T x A).

    Uses every row, the newest weighted ``(1 - lam)``, the one before ``(1 - lam) * lam`` and so
    on; the finite-sample weights are renormalised to sum to one (so a short series is not biased
    down). It is the forecast for the period after the last row."""
    r = np.asarray(returns_2d, dtype=float)
    if r.ndim != 2 or r.shape[0] == 0:
        raise ValueError("returns_2d must be a non-empty T x A array")
    t = r.shape[0]
    w = (1.0 - lam) * lam ** np.arange(t - 1, -1, -1, dtype=float)
    w /= w.sum()
    cov = (r * w[:, None]).T @ r
    sd = np.sqrt(np.diag(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(sd, sd)
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    return cov, corr


# ---------------------------------------------------------------------------------------- GARCH


@dataclass(frozen=True)
class Garch11:
    """GARCH(1,1) parameters per period; ``nu = inf`` means normal innovations."""

    omega: float
    alpha: float
    beta: float
    nu: float = math.inf
    mu: float = 0.0

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def unconditional_variance(self) -> float:
        p = self.persistence
        return self.omega / (1.0 - p) if p < 1.0 else math.inf


@dataclass(frozen=True)
class Garch11Fit:
    params: Garch11
    loglik: float
    variances: np.ndarray  # h[t], the forecast for returns[t] (uses returns up to t-1)
    std_resid: np.ndarray  # (returns - mu) / sqrt(h): unit variance if the model is right
    converged: bool
    n: int

    @property
    def last_variance(self) -> float:
        return float(self.variances[-1])


def garch_variance_path(params: Garch11, returns: np.ndarray, init: float | None = None) -> np.ndarray:
    """Conditional variances ``h[t]`` for each return (a forecast: uses returns up to ``t - 1``).

    ``h[0] = init``, by default the sample variance of the returns (the usual "backcast")."""
    r = np.asarray(returns, dtype=float).ravel()
    if len(r) == 0:
        return np.empty(0)
    e = r - params.mu
    if init is None:
        init = float(np.mean(e * e))
    return _first_order_filter(params.omega + params.alpha * e * e, params.beta, init)


def garch_forecast(params: Garch11, last_variance: float, last_return: float, h: int) -> np.ndarray:
    """Per-step variance forecasts for steps 1..h after the last observed return.

    ``last_variance`` is ``h[T]`` (the variance the model gave the last return ``r[T]``).
    Step 1: ``omega + alpha * (r[T] - mu) ** 2 + beta * h[T]``; step k+1:
    ``omega + (alpha + beta) * step_k``, which converges to ``omega / (1 - alpha - beta)``."""
    if h < 1:
        return np.empty(0)
    p = params.persistence
    first = params.omega + params.alpha * (last_return - params.mu) ** 2 + params.beta * last_variance
    k = np.arange(h, dtype=float)
    if p >= 1.0:  # integrated: linear growth
        return first + params.omega * k
    vbar = params.omega / (1.0 - p)
    return vbar + (first - vbar) * p**k


def horizon_vol(per_step_variances: np.ndarray) -> float:
    """Volatility of the sum of the steps' returns: sqrt of the summed variances."""
    return float(math.sqrt(float(np.sum(per_step_variances))))


def _t_loglik(e2_over_h: np.ndarray, log_h: np.ndarray, nu: float) -> float:
    if math.isinf(nu):
        return float(-0.5 * np.sum(math.log(2 * math.pi) + log_h + e2_over_h))
    const = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * math.log(math.pi * (nu - 2))
    return float(len(log_h) * const - 0.5 * np.sum(log_h)
                 - 0.5 * (nu + 1) * np.sum(np.log1p(e2_over_h / (nu - 2))))


def _unpack(x: np.ndarray, var: float, student: bool) -> Garch11:
    """Unconstrained vector -> parameters on the returns' scale.

    x = (log(omega / var), logit(alpha + beta), logit(alpha / (alpha + beta)), mu / sd[, log(nu - 2)])."""
    pers = MAX_PERSISTENCE * float(special.expit(x[1]))
    share = float(special.expit(x[2]))
    nu = 2.0 + math.exp(min(float(x[4]), 8.0)) if student else math.inf
    return Garch11(omega=var * math.exp(x[0]), alpha=pers * share, beta=pers * (1 - share), nu=nu,
                   mu=float(x[3]) * math.sqrt(var))


def _loglik(params: Garch11, r: np.ndarray, init: float) -> float:
    h = garch_variance_path(params, r, init)
    if np.any(h <= 0) or not np.all(np.isfinite(h)):
        return -np.inf
    e = r - params.mu
    return _t_loglik(e * e / h, np.log(h), params.nu)


def fit_garch11(returns: np.ndarray, dist: str = "t") -> Garch11Fit:
    """Maximum likelihood GARCH(1,1) with Student-t (``dist="t"``) or normal innovations.

    The optimiser (L-BFGS-B, numerical gradients) works on an unconstrained transform in which
    ``alpha + beta`` is a logistic of a free number, so stationarity is always enforced; omega is
    relative to the sample variance so the problem is scale free. Several persistence starting
    values are tried and the best likelihood kept."""
    if dist not in ("t", "normal"):
        raise ValueError("dist must be 't' or 'normal'")
    r = np.asarray(returns, dtype=float).ravel()
    r = r[np.isfinite(r)]
    if len(r) < 50:
        raise ValueError("need at least 50 returns to fit a GARCH(1,1)")
    student = dist == "t"
    var = float(np.var(r))
    if var <= 0:
        raise ValueError("returns have no variance")
    init = float(np.mean((r - r.mean()) ** 2))
    sd = math.sqrt(var)

    def nll(x: np.ndarray) -> float:
        val = _loglik(_unpack(x, var, student), r, init)
        return 1e30 if not np.isfinite(val) else -val / len(r)

    from scipy import optimize  # on first use, as scipy.signal in _first_order_filter

    best = None
    for pers, share in ((0.95, 0.08), (0.99, 0.05), (0.8, 0.15)):
        x0 = [math.log(1 - pers), special.logit(pers / MAX_PERSISTENCE), special.logit(share), float(r.mean()) / sd]
        if student:
            x0.append(math.log(6.0))
        res = optimize.minimize(nll, np.array(x0), method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None  # the loop above tried three starts
    params = _unpack(best.x, var, student)
    h = garch_variance_path(params, r, init)
    return Garch11Fit(params=params, loglik=_loglik(params, r, init), variances=h,
                      std_resid=(r - params.mu) / np.sqrt(h), converged=bool(best.success), n=len(r))


def simulate_garch11(params: Garch11, n: int, rng: np.random.Generator, burn: int = 500) -> np.ndarray:
    """A simulated return series (for tests and scenario checks); a Python loop over time."""
    total = n + burn
    if math.isinf(params.nu):
        z = rng.standard_normal(total)
    else:
        z = rng.standard_t(params.nu, total) * math.sqrt((params.nu - 2) / params.nu)
    out = np.empty(total)
    h = params.unconditional_variance
    for t in range(total):
        e = math.sqrt(h) * z[t]
        out[t] = params.mu + e
        h = params.omega + params.alpha * e * e + params.beta * h
    return out[burn:]
