"""The demo's crash: a deterministic, correlated ETH/BTC price path in four phases.

Pure (numpy only: no web3, no clock, no I/O). One step is one devnet block (1 s of wall time) and
stands for ``minutes_per_step`` minutes of market time (5 by default), so 90 steps replay 7.5
hours of market:

* ``calm``: small moves at ``calm_vol`` (annualised);
* ``build-up``: volatility ramps up to ``storm_multiple`` times the calm level, with a slight slide;
* ``crash``: within a few hours ETH ends ``drawdown`` (40%) below where the build-up started
  (BTC ``btc_drawdown``), still at storm volatility;
* ``rebound``: a partial recovery of ``rebound`` (a fraction) of the crash's log-loss.

Shocks are Gaussian with correlation ``correlation`` between ETH and BTC, drawn from
``numpy.random.default_rng(seed)``: the same spec always gives the same path. The crash and rebound
phases are Brownian bridges: the noise is kept, but its sum over the phase is replaced by the
phase's target move, so the drawdown is what the spec asks for, within the noise of a few steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PHASES = ("calm", "build-up", "crash", "rebound")
MINUTES_PER_YEAR = 365 * 24 * 60
# Share of the steps per phase (calm, build-up, crash, rebound). The crash gets the most: its length
# in blocks sets how fast the price falls per block, which is what a keeper has to keep up with; so
# a short replay shortens the other phases first and keeps the crash at MIN_CRASH_STEPS when it can.
PHASE_SHARES = (0.15, 0.2, 0.45, 0.2)
MIN_CRASH_STEPS = 28
MIN_STEPS = 24


@dataclass(frozen=True)
class CrashSpec:
    steps: int = 90
    minutes_per_step: float = 5.0
    eth_start: float = 2_000.0
    btc_start: float = 30_000.0
    calm_vol: float = 0.6  # annualised
    storm_multiple: float = 5.0  # build-up ramps the vol to this multiple; the crash stays there
    buildup_slide: float = 0.04  # ETH's drift over the build-up (BTC: three quarters of it)
    drawdown: float = 0.40  # ETH, from the start of the build-up to the end of the crash
    btc_drawdown: float = 0.32
    rebound: float = 0.35  # fraction of the crash's log-loss recovered
    correlation: float = 0.8
    seed: int = 2022
    # Steps per phase (calm, build-up, crash, rebound), overriding ``steps`` and PHASE_SHARES.
    phase_steps: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.phase_steps is not None:
            if len(self.phase_steps) != 4 or min(self.phase_steps) < 4:
                raise ValueError(f"phase_steps: four phases of at least 4 steps each, got {self.phase_steps}")
            object.__setattr__(self, "steps", sum(self.phase_steps))
        if self.steps < MIN_STEPS:
            raise ValueError(f"a crash needs at least {MIN_STEPS} steps, got {self.steps}")
        if not self.buildup_slide < self.btc_drawdown <= self.drawdown < 1:
            raise ValueError("need buildup_slide < btc_drawdown <= drawdown < 1")
        if not 0 <= self.rebound < 1:
            raise ValueError("rebound must be within [0, 1): a full rebound is no crash")
        if not -1 < self.correlation < 1:
            raise ValueError("correlation must be within (-1, 1)")
        if self.minutes_per_step <= 0 or self.calm_vol <= 0 or self.storm_multiple < 1:
            raise ValueError("minutes_per_step and calm_vol must be positive, storm_multiple >= 1")


@dataclass(frozen=True)
class CrashPath:
    """Prices per step (``eth[0]``/``btc[0]`` are the start prices) and each step's phase."""

    eth: np.ndarray
    btc: np.ndarray
    phases: tuple[str, ...]
    minutes_per_step: float

    def __len__(self) -> int:
        return len(self.eth)

    def phase_slice(self, phase: str) -> slice:
        idx = [i for i, p in enumerate(self.phases) if p == phase]
        if not idx:
            raise KeyError(phase)
        return slice(idx[0], idx[-1] + 1)

    def hours(self) -> np.ndarray:
        return np.arange(len(self)) * self.minutes_per_step / 60.0


def phase_lengths(steps: int) -> tuple[int, int, int, int]:
    """Steps per phase, summing to ``steps``."""
    crash = max(round(steps * PHASE_SHARES[2]), min(MIN_CRASH_STEPS, steps - 12))
    rest = steps - crash
    others = 1 - PHASE_SHARES[2]
    calm, build = (max(4, round(rest * s / others)) for s in PHASE_SHARES[:2])
    rebound = rest - calm - build
    if rebound < 4:
        raise ValueError(f"{steps} steps are too few for four phases")
    return calm, build, crash, rebound


def _bridge(noise: np.ndarray, total: float) -> np.ndarray:
    """Keep the noise's shape, make its sum ``total``."""
    bridged: np.ndarray = noise - noise.mean() + total / len(noise)
    return bridged


def generate(spec: CrashSpec = CrashSpec()) -> CrashPath:
    calm, build, crash, rebound = spec.phase_steps or phase_lengths(spec.steps)
    rng = np.random.default_rng(spec.seed)
    per_step = math.sqrt(spec.minutes_per_step / MINUTES_PER_YEAR)
    sigma_calm = spec.calm_vol * per_step
    storm = spec.storm_multiple * sigma_calm
    sigma = np.concatenate([
        np.full(calm, sigma_calm),
        np.linspace(sigma_calm, storm, build),
        np.full(crash, storm),
        np.full(rebound, storm * 0.75),
    ])
    chol = np.linalg.cholesky(np.array([[1.0, spec.correlation], [spec.correlation, 1.0]]))
    shocks = rng.standard_normal((spec.steps, 2)) @ chol.T * sigma[:, None]
    shocks[0] = 0.0  # the path starts at the devnet's seeded prices
    b0, c0 = calm, calm + build
    r0 = c0 + crash
    out = []
    for col, dd, slide in ((0, spec.drawdown, spec.buildup_slide), (1, spec.btc_drawdown, spec.buildup_slide * 0.75)):
        r = shocks[:, col].copy()
        r[b0:c0] = _bridge(r[b0:c0], math.log(1 - slide))
        loss = math.log(1 - dd) - math.log(1 - slide)
        r[c0:r0] = _bridge(r[c0:r0], loss)
        r[r0:] = _bridge(r[r0:], -loss * spec.rebound)
        out.append(np.exp(np.cumsum(r)))
    phases = ("calm",) * calm + ("build-up",) * build + ("crash",) * crash + ("rebound",) * rebound
    return CrashPath(spec.eth_start * out[0], spec.btc_start * out[1], phases, spec.minutes_per_step)


def max_drawdown(prices: np.ndarray) -> float:
    """The largest peak-to-trough fall, as a fraction of the peak."""
    peak = np.maximum.accumulate(prices)
    return float(np.max(1 - prices / peak))


def realised_vol(prices: np.ndarray, minutes_per_step: float) -> float:
    """Annualised standard deviation of the log returns."""
    r = np.diff(np.log(prices))
    return float(np.std(r, ddof=1) * math.sqrt(MINUTES_PER_YEAR / minutes_per_step))
