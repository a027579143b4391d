"""P(liquidation within a horizon): analytic first passage and Monte Carlo over scenario paths.

Pure: numpy/scipy only; threads (``workers``) are the only concurrency and touch no I/O.

Analytic
--------
A log price ``X_t = mu t + sigma W_t`` started at 0 reaches a barrier ``b < 0`` by ``T`` with
probability (reflection principle with drift)::

    P = Phi((b - mu T) / (sigma sqrt T)) + exp(2 mu b / sigma^2) Phi((b + mu T) / (sigma sqrt T))

and an upper barrier ``b > 0`` by symmetry (``b, mu -> -b, -mu``). With a deterministic variance
term structure (a GARCH forecast) the same formula holds exactly in "variance time": pass the
horizon volatility ``sqrt(sum of step variances)`` and the horizon drift (drift proportional to
variance assumed). Monte Carlo paths are monitored only at the end of each step; the
Broadie-Glasserman-Kou correction (shift the barrier away by ``0.5826 sigma sqrt(dt)``) makes the
continuous formula match a discretely monitored walk: ``first_passage_probability_discrete``.

Monte Carlo
-----------
Every position kind is *linear in the price ratios* ``m_a = price_a(t) / price_a(0)``::

    margin_k(t) = sum_a linear[a, k] * m_a(t) + const[k]        liquidated  <=>  margin_k < 0

* lending (Aave, Morpho): ``linear = collateral value * weight - debt value`` per asset (USD), so
  ``margin = debt * (health - 1)``; assets not in the scenario's symbol list keep their price
  (stablecoins) and go into ``const``.
* perps (GMX v1, ``validateLiquidation`` as ``liquidatePosition`` runs it):
  ``T = max(margin_fees + liquidation_fee, size / max_leverage)``; a long has
  ``margin = collateral - T - size * (1 - mark * m / average_price)``, a short the mirror image.
  An unrealised profit counts as collateral there, so this margin is the exact one (``remaining
  - T``, remaining = collateral + PnL) on both sides of the average price.

So one chunk of paths costs one small matrix product per step, ``(paths, assets) @ (assets,
positions)``, and a running minimum — the (paths x steps x positions) tensor is never held.

Loss given liquidation (``detail=True``), valued at the first step the margin is negative:
lending ``bonus * close_factor * debt`` (Aave: the caller's liquidation bonus, close factor 50%, or
100% once health <= 0.95; Morpho: incentive ``min(1.15, 1 / (1 - 0.3 (1 - LLTV)))``, the whole
debt repaid); perps by GMX v1's two states (``Vault.liquidatePosition``): with the collateral still
left (``margin + T``: collateral plus PnL) at or above ``marginFees + liquidationFee`` the position is
over its maximum leverage only (state 2) and GMX closes it, returning what is left less the margin
fees: the loss is those fees; below that line (state 1, reached first only when ``size / maxLeverage``
is smaller, or through a gap) the trader forfeits everything left.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from scipy import special

from keeper.domain import Position, Protocol, Side
from keeper.risk import scenarios as sc
from keeper.risk.first_loss import first_loss_fraction, first_loss_view
from keeper.risk.health import perp_threshold

BGK_BETA = 0.5825971579390106  # -zeta(1/2) / sqrt(2 pi)
AAVE_FULL_CLOSE_HEALTH = 0.95

_T = TypeVar("_T")
_R = TypeVar("_R")


def _phi(x: np.ndarray) -> np.ndarray:
    phi: np.ndarray = special.ndtr(x)
    return phi


def _ndtr(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


# Below this, Phi((b + mu) / s) is taken in log space: exp(2 mu b / s^2) * Phi((b + mu) / s) is then a
# huge factor times a vanishing one (the exponent passes 700 only when (b + mu) / s < -37.4), and the
# plain product loses the term (it underflows, or the exponent is clipped): P came out 0.5 where it is
# 0.51 for a drift that ends on the barrier with a small vol.
LOG_TAIL_BELOW = -30.0


def _first_passage_scalar(b: float, s: float, mu: float) -> float:
    """:func:`first_passage_probability` for one value (same cases, same order)."""
    if b > 0:  # reflect an upper barrier to a lower one
        b, mu = -b, -mu
    if b >= 0:
        return 1.0
    if not s > 0:
        return 1.0 if mu <= b else 0.0  # no vol: deterministic drift
    first = _ndtr((b - mu) / s)
    num, den = 2.0 * mu * b, s * s
    # when s*s underflows: as numpy, +-inf (or nan for 0/0)
    x = num / den if den > 0 else (math.copysign(math.inf, num) if num != 0 else math.nan)
    y = (b + mu) / s
    if x != x:
        second = math.nan
    elif y < LOG_TAIL_BELOW:
        second = math.exp(min(max(x + float(special.log_ndtr(y)), -745.0), 700.0))
    else:
        second = math.exp(min(max(x, -745.0), 700.0)) * _ndtr(y)
    p = first + (second if second > 0 else 0.0)
    return min(max(p, 0.0), 1.0)


def first_passage_probability(log_barrier: float | np.ndarray, horizon_vol: float | np.ndarray,
                              drift: float | np.ndarray = 0.0) -> np.ndarray | float:
    """P(a Brownian log price with total drift ``drift`` and total vol ``horizon_vol`` over the
    horizon touches ``log_barrier`` = log(barrier / price now)); vectorised (broadcasts).

    A barrier at or beyond the start (``b = 0``) has probability 1. Scalars take a pure-Python path
    (the same formula with ``math.erfc``; ~20x faster than numpy on one value: the planner calls
    this thousands of times per tick)."""
    if np.ndim(log_barrier) == 0 and np.ndim(horizon_vol) == 0 and np.ndim(drift) == 0:
        return _first_passage_scalar(float(log_barrier), float(horizon_vol), float(drift))
    b = np.asarray(log_barrier, dtype=float)
    s = np.asarray(horizon_vol, dtype=float)
    mu = np.asarray(drift, dtype=float)
    b, s, mu = np.broadcast_arrays(b, s, mu)
    sign = np.where(b > 0, -1.0, 1.0)  # reflect upper barriers to lower ones
    b, mu = b * sign, mu * sign
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        first = _phi((b - mu) / s)
        x = 2.0 * mu * b / (s * s)
        y = (b + mu) / s
        second = np.where(y < LOG_TAIL_BELOW, np.exp(np.clip(x + special.log_ndtr(y), -745.0, 700.0)),
                          np.exp(np.clip(x, -745.0, 700.0)) * _phi(y))
        p = first + np.where(second > 0, second, 0.0)
    p = np.where(s > 0, p, np.where(mu <= b, 1.0, 0.0))  # no vol: deterministic drift
    p = np.where(b >= 0, 1.0, p)
    out = np.clip(p, 0.0, 1.0)
    return out if out.ndim else float(out)


def first_passage_probability_discrete(log_barrier: float | np.ndarray, step_vol: float | np.ndarray, steps: int,
                                       drift_per_step: float | np.ndarray = 0.0) -> np.ndarray | float:
    """As :func:`first_passage_probability` for a walk observed only at ``steps`` equal steps:
    the continuous formula with the barrier moved away by ``BGK_BETA * step_vol`` (Broadie,
    Glasserman & Kou 1997; accurate when the barrier is more than a few step vols away)."""
    b = np.asarray(log_barrier, dtype=float)
    sv = np.asarray(step_vol, dtype=float)
    shifted = np.where(b > 0, b + BGK_BETA * sv, b - BGK_BETA * sv)
    return first_passage_probability(shifted, sv * math.sqrt(steps),
                                     np.asarray(drift_per_step, dtype=float) * steps)


# ------------------------------------------------------------------------------- exposures


@dataclass(frozen=True)
class Exposures:
    """Positions as linear margins over ``symbols`` (see module doc); K positions, A assets."""

    symbols: tuple[str, ...]
    keys: tuple[str, ...]
    linear: np.ndarray  # (A, K) USD of margin per unit price ratio
    const: np.ndarray  # (K,) USD
    debt: np.ndarray  # (A, K) USD of debt per unit price ratio (lending)
    debt_const: np.ndarray  # (K,) debt in assets outside ``symbols``
    bonus: np.ndarray  # (K,) loss per USD of debt repaid (lending), 0 for perps
    full_close: np.ndarray  # (K,) bool: the whole debt is repaid (Morpho) rather than Aave's rule
    perp_threshold: np.ndarray  # (K,) T for perps (remaining collateral = margin + T), 0 otherwise
    perp_state1: np.ndarray  # (K,) marginFees + liquidationFee: below it GMX liquidates (state 1), 0 otherwise
    perp_close_fee: np.ndarray  # (K,) marginFees: what a state-2 close takes from the collateral left
    at_risk: np.ndarray  # (K,) bool: has debt / open size
    liquidated_now: np.ndarray  # (K,) bool
    fixed_symbols: tuple[str, ...]  # symbols held but absent from ``symbols``: price held fixed


def morpho_incentive(lltv: float) -> float:
    return min(1.15, 1.0 / (1.0 - 0.3 * (1.0 - lltv)))


def exposures(positions: Sequence[Position], symbols: Sequence[str], aave_bonus: float = 0.05) -> Exposures:
    """Map positions to linear margins over ``symbols`` (a Python loop over positions and legs:
    done once per tick, not per path)."""
    idx = {s: i for i, s in enumerate(symbols)}
    na, k = len(symbols), len(positions)
    lin, debt = np.zeros((na, k)), np.zeros((na, k))
    const, debt_const, bonus, thr = np.zeros(k), np.zeros(k), np.zeros(k), np.zeros(k)
    state1, close_fee = np.zeros(k), np.zeros(k)
    full_close, at_risk, now = np.zeros(k, bool), np.zeros(k, bool), np.zeros(k, bool)
    fixed: set[str] = set()
    for j, pos in enumerate(positions):
        pos = first_loss_view(pos)  # a Morpho position with a pre-liquidation: its first loss at pre_lltv
        if pos.perp is not None:
            p = pos.perp
            if p.size_usd <= 0:
                continue
            t = perp_threshold(p.margin_fees_usd, p.liquidation_fee_usd, p.size_usd, p.max_leverage)
            thr[j] = t
            state1[j], close_fee[j] = p.margin_fees_usd + p.liquidation_fee_usd, p.margin_fees_usd
            at_risk[j] = True
            slope = p.size_usd * p.mark_price / p.average_price
            a = idx.get(p.index.symbol)
            sign = 1.0 if p.is_long else -1.0
            c = p.collateral_usd - t - sign * p.size_usd
            if a is None:
                fixed.add(p.index.symbol)
                const[j] = c + sign * slope
            else:
                lin[a, j] = sign * slope
                const[j] = c
            # now: the margin at m = 1 (profit counts, as a loss does)
            now[j] = p.collateral_usd + sign * (slope - p.size_usd) - t < 0
            continue
        weighted_lltv = []
        for leg in pos.legs:
            v = leg.value_usd
            a = idx.get(leg.asset.symbol)
            if leg.side is Side.COLLATERAL:
                term = v * leg.liquidation_weight
                weighted_lltv.append((v, leg.liquidation_weight))
            else:
                term = -v
                at_risk[j] |= v > 0
                if a is None:
                    debt_const[j] += v
                else:
                    debt[a, j] += v
            if a is None:
                fixed.add(leg.asset.symbol)
                const[j] += term
            else:
                lin[a, j] += term
        if pos.protocol is Protocol.MORPHO_BLUE:
            tot = sum(v for v, _ in weighted_lltv)
            lltv = sum(v * w for v, w in weighted_lltv) / tot if tot > 0 else 0.0
            pre = first_loss_fraction(pos)
            bonus[j], full_close[j] = (morpho_incentive(lltv) - 1.0 if pre is None else pre), True
        else:
            bonus[j] = aave_bonus
        now[j] = at_risk[j] and lin[:, j].sum() + const[j] < 0
    return Exposures(tuple(symbols), tuple(p.key for p in positions), lin, const, debt, debt_const,
                     bonus, full_close, thr, state1, close_fee, at_risk, now, tuple(sorted(fixed)))


# ------------------------------------------------------------------------------ Monte Carlo


@dataclass(frozen=True)
class MCResult:
    keys: tuple[str, ...]
    horizons: tuple[int, ...]  # steps
    prob: np.ndarray  # (H, K) P(liquidated by horizon)
    stderr: np.ndarray  # (H, K) binomial sqrt(p (1 - p) / n), or from pair means (antithetic)
    loss_given_liq: np.ndarray  # (K,) E[loss | liquidated by the last horizon], USD (NaN if none)
    expected_loss: np.ndarray  # (K,) E[loss] over all paths = P * loss_given_liq, USD
    n_paths: int
    path_loss: np.ndarray | None = None  # (paths,) loss of the whole book on each path (detail)

    def book_loss_tail(self, level: float = 0.99) -> tuple[float, float]:
        """(VaR, expected shortfall) of the book's liquidation loss at ``level``: the ``level``
        quantile of the per-path loss and the mean loss beyond it (USD; needs ``detail``)."""
        if self.path_loss is None:
            raise ValueError("run with detail=True for per-path losses")
        var = float(np.quantile(self.path_loss, level))
        tail = self.path_loss[self.path_loss >= var]
        return var, float(tail.mean())

    @property
    def p(self) -> np.ndarray:
        """P(liquidation within the last horizon), per position."""
        last: np.ndarray = self.prob[-1]
        return last


# What the Monte Carlo evaluates (:func:`monte_carlo_liquidation`): an array of paths, chunks of
# them, or ``(spec, n_paths, seed)`` to generate.
Paths = np.ndarray | Iterable[np.ndarray] | tuple[sc.ScenarioSpec, int, sc.Seed]

EVAL_ROWS = 1024  # paths per inner evaluation piece: (rows, positions) float32 stays in L2


class _Acc:
    """Per-chunk partial sums, reduced in chunk order (deterministic whatever the threads)."""

    def __init__(self, h: int, k: int, steps: int) -> None:
        self.n, self.steps = 0, steps
        self.hits, self.both = np.zeros((h, k), np.int64), np.zeros((h, k), np.int64)
        self.loss = np.zeros(k)
        self.path_loss: list[np.ndarray] = []

    def add(self, other: _Acc) -> _Acc:
        self.n += other.n
        self.hits += other.hits
        self.both += other.both
        self.loss += other.loss
        self.path_loss += other.path_loss
        return self


def _count(acc: _Acc, i: int, liq: np.ndarray, pairs: bool) -> None:
    acc.hits[i] += liq.sum(axis=0)
    if pairs:
        acc.both[i] += (liq[0::2] & liq[1::2]).sum(axis=0)


def _eval_piece(r: np.ndarray, ex: Exposures, hset: dict[int, int], detail: bool, pairs: bool,
                acc: _Acc) -> None:
    """One piece of paths: per step, price ratios -> margins (one matrix product) -> running min.

    ``detail``: the price ratios of every step are kept (rows x steps x assets, small) and a
    counter of steps survived gives the first crossing step; margin and debt at that step are
    recomputed afterwards for the liquidated (path, position) pairs only."""
    n, _, na = r.shape
    steps = max(hset)  # nothing after the last horizon is needed
    dt = r.dtype
    k = len(ex.keys)
    lin = ex.linear.astype(dt)
    neg_const = (-ex.const).astype(dt)
    x = np.zeros((n, na), dt)
    hist = np.empty((n, steps, na), dt) if detail else None
    m = np.empty((n, na), dt)
    mn = np.empty((n, k), dt)
    tmp = np.empty((n, k), dt)
    survived = np.zeros((n, k), np.int16) if detail else None
    for s in range(steps):
        x += r[:, s, :]
        np.exp(x, out=m)
        if hist is not None:  # detail
            hist[:, s, :] = m
        if s == 0:
            np.matmul(m, lin, out=mn)
        else:
            np.matmul(m, lin, out=tmp)
            np.minimum(mn, tmp, out=mn)
        if survived is not None:  # detail
            np.add(survived, mn >= neg_const, out=survived, casting="unsafe")
        if s + 1 in hset:
            _count(acc, hset[s + 1], mn < neg_const, pairs)
    if hist is not None and survived is not None:  # detail
        rows, cols = np.nonzero(survived < steps)
        if len(rows):
            m_tau = hist[rows, survived[rows, cols], :].astype(float)  # (L, assets)
            margin = np.einsum("la,al->l", m_tau, ex.linear[:, cols]) + ex.const[cols]
            debt = np.einsum("la,al->l", m_tau, ex.debt[:, cols]) + ex.debt_const[cols]
            loss = _loss(ex, margin, debt, cols)
            acc.loss += np.bincount(cols, weights=loss, minlength=k)
            acc.path_loss.append(np.bincount(rows, weights=loss, minlength=n))
        else:
            acc.path_loss.append(np.zeros(n))


def _loss(ex: Exposures, margin: np.ndarray, debt: np.ndarray,
          cols: np.ndarray | slice = slice(None)) -> np.ndarray:
    """Loss given liquidation from the margin and the debt value at the liquidation step
    (``cols``: the position of each entry)."""
    health = (margin + debt) / np.where(debt > 0, debt, 1.0)
    close = np.where(ex.full_close[cols] | (health <= AAVE_FULL_CLOSE_HEALTH), 1.0, 0.5)
    lending = ex.bonus[cols] * close * debt
    left = np.maximum(margin + ex.perp_threshold[cols], 0.0)  # the collateral still left
    closed = left >= ex.perp_state1[cols]  # state 2: closed, the rest returned less the margin fees
    perp = np.where(closed, np.minimum(ex.perp_close_fee[cols], left), left)
    loss: np.ndarray = np.where(ex.perp_threshold[cols] > 0, perp, lending)
    return loss


def _eval_chunk(r: np.ndarray, ex: Exposures, horizons: tuple[int, ...], detail: bool,
                pairs: bool = False) -> _Acc:
    n, steps, _ = r.shape
    if pairs and n % 2:
        raise ValueError("antithetic paths come in pairs: chunks must hold an even number of paths")
    acc = _Acc(len(horizons), len(ex.keys), steps)
    acc.n = n
    hset = {h: i for i, h in enumerate(horizons)}
    for lo in range(0, n, EVAL_ROWS):
        _eval_piece(r[lo:lo + EVAL_ROWS], ex, hset, detail, pairs, acc)
    return acc


def _subset(ex: Exposures, mask: np.ndarray) -> Exposures:
    cols = np.flatnonzero(mask)
    return Exposures(ex.symbols, tuple(ex.keys[i] for i in cols), ex.linear[:, cols], ex.const[cols],
                     ex.debt[:, cols], ex.debt_const[cols], ex.bonus[cols], ex.full_close[cols],
                     ex.perp_threshold[cols], ex.perp_state1[cols], ex.perp_close_fee[cols], ex.at_risk[cols],
                     ex.liquidated_now[cols], ex.fixed_symbols)


def _chunks_of(paths: np.ndarray | Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    if isinstance(paths, np.ndarray):
        return [paths] if paths.shape[0] <= sc.BLOCK_PATHS else (
            paths[i:i + sc.BLOCK_PATHS] for i in range(0, paths.shape[0], sc.BLOCK_PATHS))
    return paths


def _map_in_order(fn: Callable[[_T], _R], items: Iterable[_T], workers: int) -> list[_R]:
    """``[fn(x) for x in items]`` on ``workers`` threads, at most ``2 * workers`` items in flight
    (so a lazy iterable of chunks is never drawn into memory all at once)."""
    if workers <= 1:
        return [fn(x) for x in items]
    out: list[_R] = []
    pending: deque[Future[_R]] = deque()
    with ThreadPoolExecutor(workers) as pool:
        for x in items:
            pending.append(pool.submit(fn, x))
            if len(pending) >= 2 * workers:
                out.append(pending.popleft().result())
        out.extend(f.result() for f in pending)
    return out


def monte_carlo_liquidation(ex: Exposures, paths: Paths, horizons: Sequence[int] | None = None,
                            detail: bool = False, workers: int = 1,
                            antithetic: bool | None = None) -> MCResult:
    """P(liquidation by each horizon) for every position in ``ex`` over scenario log returns.

    ``paths``: an array (paths, steps, assets) over ``ex.symbols`` — evaluated in blocks of
    ``BLOCK_PATHS`` — or any iterable of such chunks (``scenario_chunks``), or a
    ``(ScenarioSpec, n_paths, seed)`` tuple, in which case each worker thread generates and
    evaluates its own blocks (generation and evaluation in cache, in parallel).
    ``horizons`` in steps (default: the last step). ``detail`` adds the loss given liquidation
    (about twice the cost). ``antithetic``: paths ``2i``/``2i + 1`` are antithetic pairs, so the
    standard error is computed from pair means (taken from the spec when one is given)."""
    if isinstance(paths, tuple):
        spec, n_paths, seed = paths
        ss = sc.seed_sequence(seed)
        if tuple(spec.symbols) != ex.symbols:
            raise ValueError("spec symbols differ from the exposures' symbols")
        if antithetic is None:
            antithetic = spec.antithetic
        jobs = ((lambda i=i: sc.scenario_block(spec, n_paths, ss, i)) for i in range(sc.n_blocks(n_paths)))
    else:
        jobs = ((lambda c=c: c) for c in _chunks_of(paths))
    pairs = bool(antithetic)
    hz = tuple(horizons) if horizons else None
    full, active = ex, ex.at_risk & ~ex.liquidated_now
    ex = _subset(ex, active)  # positions with a fixed answer are not simulated

    def run(job: Callable[[], np.ndarray]) -> _Acc:
        chunk = job()
        if chunk.ndim != 3 or chunk.shape[2] != len(ex.symbols):
            raise ValueError("paths must be (paths, steps, assets) over the exposures' symbols")
        h = hz or (chunk.shape[1],)
        if max(h) > chunk.shape[1] or min(h) < 1:
            raise ValueError("horizon beyond the paths' steps")
        return _eval_chunk(chunk, ex, h, detail, pairs)

    accs = _map_in_order(run, jobs, workers)
    if not accs:
        raise ValueError("no paths")
    total = accs[0]
    for a in accs[1:]:
        total.add(a)
    n = total.n
    hits, both, loss = (np.zeros((len(total.hits), len(full.keys)), np.int64),
                        np.zeros((len(total.hits), len(full.keys)), np.int64), np.zeros(len(full.keys)))
    hits[:, active], both[:, active], loss[active] = total.hits, total.both, total.loss
    ex = full
    prob = hits / n
    if pairs:  # pair means y in {0, 1/2, 1}: var(p_hat) = var(y) / pairs
        n_pairs = n / 2
        ey2 = ((hits - 2 * both) / 4 + both) / n_pairs
        stderr = np.sqrt(np.maximum(ey2 - prob**2, 0.0) / n_pairs)
    else:
        stderr = np.sqrt(prob * (1 - prob) / n)
    fixed = ex.liquidated_now | ~ex.at_risk
    prob[:, ex.liquidated_now] = 1.0
    prob[:, ~ex.at_risk] = 0.0
    stderr[:, fixed] = 0.0
    last = hits[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        lgl = np.where(last > 0, loss / last, np.nan) if detail else np.full(len(ex.keys), np.nan)
    expected = np.where(last > 0, loss / n, 0.0) if detail else np.full(len(ex.keys), np.nan)
    if detail and ex.liquidated_now.any():  # liquidated at today's prices
        now = _loss(ex, ex.linear.sum(axis=0) + ex.const, ex.debt.sum(axis=0) + ex.debt_const)
        lgl = np.where(ex.liquidated_now, now, lgl)
        expected = np.where(ex.liquidated_now, now, expected)
    path_loss = None
    if detail:
        path_loss = np.concatenate(total.path_loss)
        if ex.liquidated_now.any():
            path_loss += float(np.sum(lgl[ex.liquidated_now]))
    return MCResult(ex.keys, hz or (total.steps,), prob, stderr, lgl, expected, n, path_loss)


def liquidation_probability(positions: Sequence[Position], symbols: Sequence[str], paths: Paths,
                            horizons: Sequence[int] | None = None, detail: bool = True,
                            workers: int = 1, aave_bonus: float = 0.05,
                            antithetic: bool | None = None) -> MCResult:
    """Convenience: :func:`exposures` then :func:`monte_carlo_liquidation`."""
    return monte_carlo_liquidation(exposures(positions, symbols, aave_bonus), paths, horizons, detail,
                                   workers, antithetic)


def liquidated_now(pos: Position) -> bool:
    """``exposures([pos], ()).liquidated_now[0]`` for one position without the arrays (the
    planner asks this thousands of times per tick): perps by the GMX v1 rule at the mark price
    (collateral plus PnL, a profit included, below ``T``), lending by weighted collateral below
    debt — the one-pass sums of ``keeper.risk.joint.exposures_of``."""
    from keeper.risk.joint import exposures_of

    ex = exposures_of(pos)
    return ex is not None and ex[0]
