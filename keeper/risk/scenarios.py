"""Monte Carlo scenarios of log returns: correlated fat tails, jumps, vol-of-vol, filtered historical
simulation and replayed historical windows.

Pure: numpy only; the caller passes every array (no file I/O, no clock).

Axis order: every scenario array is ``(paths, steps, assets)``, C-contiguous. Paths outermost
lets the memory guard, the seeding blocks and the worker threads split a request along paths
without copying; assets innermost keeps each (path, step) a contiguous row, so the evaluation in
``probability.py`` reads one step's ``(paths, assets)`` slice, updates the log prices and
multiplies by the ``(assets, positions)`` exposure matrix (one BLAS call per step and piece). (The
issue sketched paths x assets x steps; that order would need a transpose before every product. A
steps-first layout measured no faster here for 512-1024-path pieces.)

Model of one step's log return of asset ``a`` on path ``p`` at step ``s``::

    r = drift[s, a] + vol[s, a] * v[p, a] * (L @ t[p, s])[a] + J[p, s, a]

* ``t``: a multivariate Student-t with ``nu`` degrees of freedom scaled to unit variance — one
  chi-square mixing variable per (path, step) shared by all assets, so crashes hit assets together
  (tail dependence); ``nu = inf`` gives Gaussians. ``L`` is the Cholesky factor of the correlation.
* ``v``: vol-of-vol, a per-path, per-asset lognormal multiplier ``exp(eta * xi - eta ** 2)`` (with
  ``E[v ** 2] = 1``), so the horizon variance is unchanged on average but some paths are storms.
* ``J``: compound-Poisson jumps. Idiosyncratic jumps arrive per asset with ``jump_intensity``
  (expected jumps per step) and log sizes ``Normal(jump_mean, jump_std)``; common (market) jumps
  arrive with ``common_jump_intensity`` and move every asset at once by
  ``common_jump_mean + common_jump_std * Z`` with one ``Z`` per jump. The Poisson counts are drawn
  exactly: the total count over all cells is Poisson, and each jump falls in a uniformly chosen cell.

Antithetic variates (``antithetic=True``): paths ``2i`` and ``2i + 1`` share the Student-t mixing
variable and have opposite Gaussian shocks (and vol-of-vol draws); jumps stay independent. Half the
Gaussian and chi-square draws, and a lower variance for P(liq); ``probability.py`` then computes
the standard error from pair means (valid whatever the pair correlation). Requests must be even.

Reproducibility: paths are generated in fixed blocks of ``BLOCK_PATHS``; block ``i`` draws from its
own generator spawned from the seed. So a request served in chunks (the memory guard) is
bit-identical to the same request served at once, whatever the chunk size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

BLOCK_PATHS = 4096
DEFAULT_MAX_BYTES = 512 * 2**20

# What :func:`seed_sequence` accepts.
Seed = int | Sequence[int] | np.random.SeedSequence | np.random.Generator | None
# The precisions numpy's generators draw in.
FloatDType = type[np.float32] | type[np.float64]


def _per_step(x: npt.ArrayLike, steps: int, n_assets: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim == 0:
        a = np.full(n_assets, float(a))
    if a.ndim == 1:
        if a.shape != (n_assets,):
            raise ValueError(f"{name} must have one value per asset")
        a = np.broadcast_to(a, (steps, n_assets))
    if a.shape != (steps, n_assets):
        raise ValueError(f"{name} must be scalar, (assets,) or (steps, assets)")
    return np.ascontiguousarray(a)


def _per_asset(x: npt.ArrayLike, n_assets: int, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    a = np.full(n_assets, float(a)) if a.ndim == 0 else a
    if a.shape != (n_assets,):
        raise ValueError(f"{name} must be scalar or (assets,)")
    return a


@dataclass(frozen=True, eq=False)
class ScenarioSpec:
    """What to simulate. Vols and drifts are per step (e.g. hourly) on the log-return scale.

    ``vols`` may be ``(assets,)`` (constant) or ``(steps, assets)`` (a GARCH/EWMA term structure:
    ``np.sqrt(garch_forecast(...))`` per asset, stacked as columns)."""

    symbols: tuple[str, ...]
    steps: int
    vols: np.ndarray
    corr: np.ndarray | None = None
    nu: float = math.inf
    drift: np.ndarray | float = 0.0
    jump_intensity: np.ndarray | float = 0.0
    jump_mean: np.ndarray | float = 0.0
    jump_std: np.ndarray | float = 0.0
    common_jump_intensity: float = 0.0
    common_jump_mean: np.ndarray | float = 0.0
    common_jump_std: np.ndarray | float = 0.0
    vol_of_vol: float = 0.0
    antithetic: bool = False
    _chol: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.symbols)
        if self.steps < 1 or n < 1:
            raise ValueError("need at least one step and one asset")
        if not (math.isinf(self.nu) or self.nu > 2):
            raise ValueError("nu must be > 2 (finite variance) or inf")
        corr = np.eye(n) if self.corr is None else np.asarray(self.corr, dtype=float)
        if corr.shape != (n, n) or not np.allclose(corr, corr.T) or not np.allclose(np.diag(corr), 1):
            raise ValueError("corr must be a symmetric (assets, assets) matrix with a unit diagonal")
        try:
            chol = np.linalg.cholesky(corr)
        except np.linalg.LinAlgError:  # positive semi-definite: clip the spectrum
            w, v = np.linalg.eigh(corr)
            fixed = (v * np.clip(w, 1e-10, None)) @ v.T
            d = np.sqrt(np.diag(fixed))
            chol = np.linalg.cholesky(fixed / np.outer(d, d))
        object.__setattr__(self, "_chol", chol)
        for name in ("vols", "drift"):
            object.__setattr__(self, name, _per_step(getattr(self, name), self.steps, n, name))
        if np.any(self.vols < 0):
            raise ValueError("vols must be non-negative")
        for name in ("jump_intensity", "jump_mean", "jump_std", "common_jump_mean", "common_jump_std"):
            object.__setattr__(self, name, _per_asset(getattr(self, name), n, name))

    @property
    def n_assets(self) -> int:
        return len(self.symbols)

    def bytes_for(self, n_paths: int, dtype: FloatDType = np.float32) -> int:
        return n_paths * self.steps * self.n_assets * np.dtype(dtype).itemsize


def seed_sequence(seed: Seed) -> np.random.SeedSequence:
    """An int / None / SeedSequence / Generator as a SeedSequence (a Generator is advanced once:
    convert it once per request and pass the result to every block)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(0, 2**63)))
    return np.random.SeedSequence(seed)


def _block_rng(ss: np.random.SeedSequence, i: int) -> np.random.Generator:
    child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, i))
    return np.random.Generator(np.random.PCG64(child))


def _add_jumps(out: np.ndarray, rng: np.random.Generator, intensity: np.ndarray, mean: np.ndarray,
               std: np.ndarray) -> None:
    n, steps, na = out.shape
    flat = out.reshape(n * steps, na)  # a view: out is C-contiguous
    for a in np.flatnonzero(intensity > 0):  # a loop over assets only
        k = int(rng.poisson(intensity[a] * n * steps))
        if k:
            cells = rng.integers(0, n * steps, k)
            sizes = mean[a] + std[a] * rng.standard_normal(k)
            np.add.at(flat, (cells, a), sizes.astype(out.dtype))


def _chi2_over_two(rng: np.random.Generator, nu: float, size: tuple[int, ...], dtype: FloatDType) -> np.ndarray:
    """Gamma(nu / 2) draws; for nu / 2 a small integer as a sum of exponentials (exact, and about
    twice as fast as ``standard_gamma``)."""
    half = nu / 2
    if half == int(half) and half <= 4:
        g = rng.standard_exponential(size, dtype=dtype)
        for _ in range(int(half) - 1):
            g += rng.standard_exponential(size, dtype=dtype)
        return g
    return rng.standard_gamma(half, size=size, dtype=dtype)


def _block(spec: ScenarioSpec, n: int, rng: np.random.Generator, dtype: FloatDType) -> np.ndarray:
    steps, na = spec.steps, spec.n_assets
    z: np.ndarray  # (paths, steps, assets) in ``dtype``
    if spec.antithetic:
        if n % 2:
            raise ValueError("antithetic scenarios need an even number of paths")
        half = rng.standard_normal((n // 2, steps, na), dtype=dtype)
        z = np.empty((n, steps, na), dtype)
        z[0::2] = half
        np.negative(half, out=z[1::2])  # path 2i + 1 mirrors path 2i
    else:
        z = rng.standard_normal((n, steps, na), dtype=dtype)
    if na > 1:
        z = z @ spec._chol.T.astype(dtype)
    m = n // 2 if spec.antithetic else n
    if not math.isinf(spec.nu):
        # multivariate t: z * sqrt((nu - 2) / chi2_nu), chi2_nu = 2 * Gamma(nu / 2)
        g = _chi2_over_two(rng, spec.nu, (m, steps, 1), dtype)
        w = np.sqrt(np.asarray((spec.nu - 2) / 2, dtype=dtype) / g)
        z *= np.repeat(w, 2, axis=0) if spec.antithetic else w
    scale: np.ndarray = spec.vols.astype(dtype)[None, :, :]
    if spec.vol_of_vol > 0:
        eta = spec.vol_of_vol
        xi = rng.standard_normal((m, 1, na))
        if spec.antithetic:
            xi = np.stack([xi, -xi], axis=1).reshape(n, 1, na)
        z *= np.exp(eta * xi - eta * eta).astype(dtype)  # (paths, 1, assets): no full-size temporary
    z *= scale
    if np.any(spec.drift != 0):
        z += np.asarray(spec.drift).astype(dtype)[None]
    # (__post_init__ made these per-asset arrays: asarray returns them as they are)
    _add_jumps(z, rng, np.asarray(spec.jump_intensity), np.asarray(spec.jump_mean), np.asarray(spec.jump_std))
    if spec.common_jump_intensity > 0:
        k = int(rng.poisson(spec.common_jump_intensity * n * steps))
        if k:
            cells = rng.integers(0, n * steps, k)
            size = spec.common_jump_mean + spec.common_jump_std * rng.standard_normal(k)[:, None]
            np.add.at(z.reshape(n * steps, na), cells, size.astype(dtype))
    return z


def n_blocks(n_paths: int) -> int:
    return -(-n_paths // BLOCK_PATHS)


def scenario_block(spec: ScenarioSpec, n_paths: int, seed: Seed, index: int,
                   dtype: FloatDType = np.float32) -> np.ndarray:
    """Block ``index`` of a request for ``n_paths`` paths (``BLOCK_PATHS`` paths, fewer in the last).

    Blocks are independent and individually seeded, so they can be made in any order or in
    parallel threads; pass the same ``SeedSequence`` for every block of one request."""
    ss = seed_sequence(seed)
    if spec.antithetic and n_paths % 2:
        raise ValueError("antithetic scenarios need an even number of paths")
    n = min(BLOCK_PATHS, n_paths - index * BLOCK_PATHS)
    if n <= 0:
        raise IndexError("block index beyond the request")
    return _block(spec, n, _block_rng(ss, index), dtype)


def scenario_chunks(spec: ScenarioSpec, n_paths: int, seed: Seed = None, dtype: FloatDType = np.float32,
                    max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[np.ndarray]:
    """Yield ``(paths_in_chunk, steps, assets)`` log-return arrays covering ``n_paths`` paths.

    The memory guard: each chunk holds whole blocks and at most ``max_bytes`` (at least one block).
    Concatenating the chunks gives exactly :func:`simulate_log_returns` with the same seed."""
    ss = seed_sequence(seed)
    per_block = spec.bytes_for(BLOCK_PATHS, dtype)
    blocks_per_chunk = max(1, max_bytes // per_block)
    total = n_blocks(n_paths)
    for first in range(0, total, blocks_per_chunk):
        parts = [scenario_block(spec, n_paths, ss, i, dtype)
                 for i in range(first, min(total, first + blocks_per_chunk))]
        yield parts[0] if len(parts) == 1 else np.concatenate(parts)


def simulate_log_returns(spec: ScenarioSpec, n_paths: int, seed: Seed = None, dtype: FloatDType = np.float32,
                         max_bytes: int = DEFAULT_MAX_BYTES) -> np.ndarray:
    """All paths at once, ``(paths, steps, assets)``; raises ``MemoryError`` above ``max_bytes``
    (use :func:`scenario_chunks` then)."""
    need = spec.bytes_for(n_paths, dtype)
    if n_paths <= 0:
        return np.empty((0, spec.steps, spec.n_assets), dtype)
    if need > max_bytes:
        raise MemoryError(f"{n_paths} paths need {need} bytes > budget {max_bytes}; use scenario_chunks")
    return np.concatenate(list(scenario_chunks(spec, n_paths, seed, dtype, max_bytes=max(need, 1))))


def price_ratios(log_returns: np.ndarray) -> np.ndarray:
    """Price relative to now after each step: ``exp(cumsum(r, axis=steps))``."""
    out = np.cumsum(log_returns, axis=1)
    ratios: np.ndarray = np.exp(out, out=out)
    return ratios


# ------------------------------------------------------------------ filtered historical simulation


def filtered_historical(std_resid: np.ndarray, vols: np.ndarray, n_paths: int, seed: Seed = None,
                        drift: np.ndarray | float = 0.0, dtype: FloatDType = np.float32) -> np.ndarray:
    """Filtered historical simulation: bootstrap whole rows (dates) of standardised residuals
    ``(T, assets)`` — keeping their cross-correlation and tails — and rescale each step by the
    forecast vol ``vols`` (``(steps, assets)``, e.g. ``sqrt(garch_forecast)`` per asset).

    Residuals are re-standardised to unit variance per asset first. Returns (paths, steps, assets).
    (Variance clustering inside the horizon comes from the forecast term structure, not from
    re-filtering the bootstrapped shocks through the GARCH recursion.)"""
    z = np.asarray(std_resid, dtype=float)
    if z.ndim == 1:
        z = z[:, None]
    z = z[np.all(np.isfinite(z), axis=1)]
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    v = np.asarray(vols, dtype=float)
    if v.ndim == 1:
        v = v[:, None] if z.shape[1] == 1 else v[None, :]
    steps = v.shape[0]
    rng = np.random.default_rng(seed_sequence(seed))
    idx = rng.integers(0, len(z), size=(n_paths, steps))
    out = z.astype(dtype)[idx] * v.astype(dtype)[None]
    shifted: np.ndarray = out + np.asarray(drift, dtype=dtype)
    return shifted


# ---------------------------------------------------------------------------- historical windows


@dataclass(frozen=True)
class HistoricalShocks:
    """Replayed windows of history as scenario paths: ``log_returns`` is (windows, steps, assets)."""

    names: tuple[str, ...]
    starts: np.ndarray
    log_returns: np.ndarray


def replay_windows(prices: np.ndarray, steps: int, starts: Mapping[str, int]) -> HistoricalShocks:
    """Named windows of ``steps`` log returns starting at the given row of ``prices`` (T, assets)."""
    r = _returns(prices)
    names, rows, out = [], [], []
    for name, s in starts.items():
        if s < 0 or s + steps > len(r):
            raise ValueError(f"window {name!r} at {s} does not fit {len(r)} returns")
        names.append(name)
        rows.append(s)
        out.append(r[s:s + steps])
    return HistoricalShocks(tuple(names), np.array(rows, dtype=int),
                            np.stack(out) if out else np.empty((0, steps, r.shape[1])))


def worst_windows(prices: np.ndarray, steps: int, k: int = 5, asset: int = 0,
                  names: tuple[str, ...] | None = None) -> HistoricalShocks:
    """The ``k`` non-overlapping windows with the deepest drawdown of ``asset`` over ``steps``
    returns (the minimum, over the window, of the cumulative log return), worst first."""
    r = _returns(prices)
    if len(r) < steps:
        raise ValueError("series shorter than one window")
    windows = np.lib.stride_tricks.sliding_window_view(r[:, asset], steps)
    depth = np.minimum.accumulate(np.cumsum(windows, axis=1), axis=1)[:, -1]
    order = np.argsort(depth, kind="stable")
    chosen: list[int] = []
    for s in order:
        if all(abs(int(s) - c) >= steps for c in chosen):
            chosen.append(int(s))
            if len(chosen) == k:
                break
    labels = names or tuple(f"worst_{i + 1}" for i in range(len(chosen)))
    return replay_windows(prices, steps, dict(zip(labels, chosen)))


def _returns(prices: np.ndarray) -> np.ndarray:
    p = np.asarray(prices, dtype=float)
    p = p[:, None] if p.ndim == 1 else p
    if np.any(p <= 0):
        raise ValueError("prices must be positive")
    return np.diff(np.log(p), axis=0)
