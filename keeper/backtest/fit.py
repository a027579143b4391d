"""Fitting the risk model's law on hourly price files: what ``keeper fit`` runs and writes as a
parameters file (``keeper.risk.params``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from keeper.errors import ConfigError

if TYPE_CHECKING:
    from keeper.risk.laws import GaussLaw, TailLaw


def fit_from_files(paths: list[Path], model: str, start: str | None, end: str | None, *, u: float = 0.03,
                   slow: float = 0.0, jump_regime: str = "vol", exponent_scale: float = 0.25,
                   nu: float | None = 10.0) -> tuple[GaussLaw | TailLaw, dict[str, Any]]:
    """(law, metadata) — the same fit ``bench/capital_efficiency.py`` runs on its tuning window
    (its default variant: ``fit_tail(tune, jump_regime="vol", nu=10, exponent_scale=0.25)``)."""
    from keeper.backtest.policies import fit_tail
    from keeper.backtest.prices import load_prices
    from keeper.risk.laws import GaussLaw

    try:
        series = [s.window(start, end) for s in load_prices(paths, aligned=False)]
    except FileNotFoundError as e:
        raise ConfigError(f"no price file at {e.filename}") from None
    if any(len(s) < 500 for s in series):
        raise ConfigError(f"fewer than 500 hourly bars in {start or 'start'} .. {end or 'end'} for "
                          + ", ".join(s.symbol for s in series if len(s) < 500))
    law: GaussLaw | TailLaw
    if model == "analytic":
        law = GaussLaw(fitted_on=f"{'+'.join(s.symbol for s in series)} (EWMA 0.94: nothing to fit)")
    else:
        try:
            law = fit_tail(series, u=u, slow=slow, jump_regime="" if jump_regime == "none" else jump_regime,
                           exponent_scale=exponent_scale, nu=nu)
        except ValueError as e:
            raise ConfigError(f"cannot fit the tail law: {e}") from None
    meta = {"fitted_on": law.to_dict()["fitted_on"], "window": [start, end], "files": [str(p) for p in paths],
            "bars": {s.symbol: len(s) for s in series}}
    return law, meta
