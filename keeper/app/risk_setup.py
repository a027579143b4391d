"""Building the risk model from config and history: the one ``RiskModel`` the daemon, ``plan``,
``rebalance`` and ``stress`` use (``keeper.risk.model``).

The law (``policy.model`` and its parameters):

1. ``policy.model_params``: a fitted-parameters file written by ``keeper fit``;
2. else ``policy.price_files`` (or ``--prices``): fitted at start-up on those hourly files;
3. else the built-in law (``keeper.risk.builtin_law.BUILTIN_TAIL``, fitted on ETH and BTC 2018-2021) — with
   a warning, since it was not fitted on the operator's assets.

The market (each volatile asset's vol now, correlations): for each asset the keeper's store rounds
and its Chainlink feed's round history (backfilled ``daemon.refit_rounds`` rounds), bucketed into
hourly closes; if that gives fewer than ``daemon.refit_min_returns`` hourly returns, the configured
price files; else ``policy.default_vol`` — a warning alert names every asset that got it.
Operator overrides (``policy.vols``, ``--vol``) win; stablecoins are stable legs."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keeper.domain import Address
from keeper.errors import ConfigError
from keeper.risk.builtin_law import BUILTIN_TAIL
from keeper.risk.laws import GaussLaw, Law, TailLaw
from keeper.risk.market import History, Market, is_stable, market_from_history
from keeper.risk.mc_model import McRisk
from keeper.risk.model import LawRisk, RiskModel
from keeper.risk.params import law_from_document
from keeper.risk.recipes import DEFAULT_FIT
from keeper.risk.refit import bucket_closes

log = logging.getLogger("keeper.risk_setup")
FILE_HISTORY_HOURS = 60 * 24  # hourly closes taken from a price file for an asset's state


def base_symbol(sym: str) -> str:
    """WETH -> ETH, WBTC -> BTC (price files are named by the underlying)."""
    s = sym.upper()
    return s[1:] if s.startswith("W") and len(s) > 3 else s


# ------------------------------------------------------------------------------------ the law


def read_params(path: Path) -> tuple[Law, dict[str, Any]]:
    """(law, the file's other keys); ConfigError naming the file on anything unreadable."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"cannot read model parameters {path}: {e.strerror}",
                          hint="write one with `keeper fit`") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"model parameters {path} are not JSON: {e}") from None
    try:
        return law_from_document(doc)
    except ValueError as e:
        raise ConfigError(f"model parameters {path}: {e}", hint="write one with `keeper fit`") from None


def load_series(paths: Sequence[Path]) -> dict[str, Any]:
    """Price files by base symbol (ConfigError naming a missing or malformed file)."""
    from keeper.backtest.prices import load_csv

    out = {}
    for f in paths:
        try:
            s = load_csv(Path(f))
        except FileNotFoundError:
            raise ConfigError(f"price file {f} does not exist", hint="policy.price_files or --prices") from None
        except (OSError, ValueError) as e:
            raise ConfigError(f"price file {f}: {e}") from None
        out[base_symbol(s.symbol)] = s
    return out


def fit_law(kind: str, series: Sequence[Any], *, u: float = 0.03, slow: float = 0.0) -> Law:
    label = f"{'+'.join(s.symbol for s in series)} {sum(len(s) - 1 for s in series)} bars"
    if kind == "analytic":
        return GaussLaw(fitted_on=label)
    jump_regime, exponent_scale, nu = DEFAULT_FIT["jump_regime"], DEFAULT_FIT["exponent_scale"], DEFAULT_FIT["nu"]
    assert isinstance(jump_regime, str) and isinstance(exponent_scale, float) and isinstance(nu, float)
    try:
        return TailLaw.fit([s.close for s in series], [s.low for s in series], u=u, slow=slow, label=label,
                           jump_regime=jump_regime, exponent_scale=exponent_scale, nu=nu)
    except ValueError as e:
        raise ConfigError(f"cannot fit the tail law: {e}") from None


def choose_law(kind: str, params: Path | None, price_files: Sequence[Path]) -> tuple[Law, str, list[str]]:
    """(law, where it came from, warnings) for ``policy.model`` (learned and mc use the tail law
    underneath: as fallback and for their paths)."""
    base = "analytic" if kind == "analytic" else "tail"
    if params is not None:
        law, meta = read_params(params)
        if (base == "tail" and not isinstance(law, TailLaw)) or (base == "analytic" and not isinstance(law, GaussLaw)):
            raise ConfigError(f"model parameters {params} hold a {law.kind} law, not the {base} law "
                              f"policy.model = {kind!r} needs", hint=f"keeper fit --model {base}")
        return law, f"params {params} ({meta.get('fitted_on', law.to_dict().get('fitted_on'))})", []
    if price_files:
        series = list(load_series(price_files).values())
        law = fit_law(base, series)
        return law, f"fitted at start-up on {law.to_dict().get('fitted_on')}", []
    if base == "analytic":
        return GaussLaw(), "EWMA 0.94 (no fit needed)", []
    return BUILTIN_TAIL, f"built-in fit ({BUILTIN_TAIL.fitted_on})", [
        "the tail law is the built-in fit (ETH and BTC history), not one fitted for these assets: "
        "set policy.model_params (keeper fit) or policy.price_files"]


# --------------------------------------------------------------------------------- the market


@dataclass
class Rounds:
    """Price observations of one asset from the chain: (time s, price) pairs, and their sources."""

    times: list[float] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def history_of(symbols: Sequence[str], rounds: Mapping[str, Rounds], files: Mapping[str, Any],
               min_returns: int) -> dict[str, History]:
    """Per symbol: the chain's rounds as hourly closes when they give ``min_returns`` returns, else
    the price file's last ``FILE_HISTORY_HOURS`` bars (or the short chain history, so the market
    can say how short it was)."""
    out: dict[str, History] = {}
    for sym in symbols:
        if is_stable(sym):
            continue
        r = rounds.get(sym)
        chain_hist = None
        if r is not None and r.times:
            closes = bucket_closes(r.times, r.prices, 3600.0)
            t0 = int(np.floor(min(r.times) / 3600.0)) * 3600
            t = t0 + 3600 * np.arange(len(closes))
            chain_hist = History(closes, None, ", ".join(r.notes) or "chain rounds", t)
            if len(closes) - 1 >= min_returns:
                out[sym] = chain_hist
                continue
        s = files.get(base_symbol(sym))
        if s is not None:
            tail = slice(-FILE_HISTORY_HOURS, None)
            out[sym] = History(s.close[tail], s.low[tail], f"price file {s.symbol} to {_iso(s.t[-1])}", s.t[tail])
        elif chain_hist is not None:
            out[sym] = chain_hist
    return out


def _iso(t: float) -> str:
    return str(np.datetime64(int(t), "s")).replace("T", " ")


def build_market(law: Law, symbols: Sequence[str], history: Mapping[str, History], *, default_vol: float,
                 min_returns: int, overrides: Mapping[str, float]) -> tuple[Market, list[str]]:
    """The market and one warning per asset that got the default vol."""
    market = market_from_history(law, symbols, history, default_annual=default_vol, min_returns=min_returns,
                                 overrides=overrides)
    warnings = [f"{s}: {a.source}" for s, a in market.assets.items() if a.source.startswith("DEFAULT")]
    return market, warnings


def make_model(kind: str, law: Law, market: Market, horizon_hours: float, *, source: str,
               mc_paths: int = 20_000) -> RiskModel:
    if kind in ("tail", "analytic"):
        return LawRisk(law, market, horizon_hours, source=source)
    if kind == "mc":
        return McRisk(law, market, horizon_hours, n_paths=mc_paths, source=source)
    raise ConfigError(f"unknown policy.model {kind!r}", hint="tail, analytic, mc or learned")


# ------------------------------------------------------------------------------ the whole model


def symbol_assets(positions: Sequence[Any]) -> dict[str, Address]:
    """Risk symbol -> asset address of every asset the positions hold or track. Positions may come
    from a ``status --json`` file or the store, where an address is a plain string (checksummed in
    older files, a perp's index only a symbol): normalised here, those that are none skipped."""
    out: dict[str, Address] = {}
    for p in positions:
        assets = ([p.perp.index] if p.perp is not None else []) + [leg.asset for leg in p.legs]
        for a in assets:
            if a.symbol != "USD" and a.symbol not in out:
                try:
                    out[a.symbol] = Address(a.address)
                except ValueError:
                    continue
    return out


def chain_rounds(symbols: Mapping[str, Address], asset_feeds: Mapping[Address, Address], *, oracle: Any,
                 head: int | None, count: int, stored: Any = None) -> dict[str, Rounds]:
    """Each volatile symbol's feed rounds: ``count`` read back from the chain (``oracle.backfill``)
    plus ``stored(feed)`` ones (the store's). A failed backfill is noted, not raised."""
    out: dict[str, Rounds] = {}
    for sym, asset in symbols.items():
        feed = asset_feeds.get(asset)
        if is_stable(sym) or feed is None:
            continue
        seen: dict[int, tuple[float, float]] = {}
        r = out[sym] = Rounds()
        if oracle is not None and head is not None:
            try:
                for rd in oracle.backfill(feed, head, count=count):
                    if rd.updated_at > 0 and rd.answer > 0:
                        seen[rd.round_id] = (rd.updated_at, rd.answer)
                r.notes.append(f"{len(seen)} Chainlink rounds")
            except Exception as e:  # the stored rounds may still do
                r.notes.append(f"backfill failed ({type(e).__name__})")
        if stored is not None:
            n = 0
            for rd in stored(feed):
                if rd.round_id not in seen and rd.updated_at > 0 and rd.answer > 0:
                    seen[rd.round_id] = (rd.updated_at, rd.answer)
                    n += 1
            r.notes.append(f"{n} more stored")
        r.times = [t for t, _ in seen.values()]
        r.prices = [float(a) for _, a in seen.values()]
    return out


@dataclass
class ModelChoice:
    """What config says about the model, resolved once per process (the law fitted or read)."""

    kind: str
    law: Law
    source: str
    warnings: list[str]
    files: dict[str, Any]
    bundle: Any = None
    bundle_path: str = ""


def choose(cfg: Any, price_files: Sequence[Path] = ()) -> ModelChoice:
    p = cfg.policy
    files_list = list(p.price_files) + [Path(f) for f in price_files]
    law, source, warnings = choose_law(p.model, p.model_params, files_list)
    files = load_series(files_list) if files_list else {}
    bundle = None
    if p.model == "learned":
        from keeper.backtest.training import load_model
        from keeper.risk.learned_model import BundleMismatch, check_bundle
        bundle = load_model(p.model_bundle)
        try:
            check_bundle(bundle, p.horizon_hours)
        except BundleMismatch as e:
            raise ConfigError(f"policy.model_bundle {p.model_bundle}: {e}",
                              hint="train one for this horizon with `keeper train --horizon`") from None
    return ModelChoice(p.model, law, source, warnings, files, bundle, str(p.model_bundle or ""))


def assemble_model(cfg: Any, choice: ModelChoice, symbols: Sequence[str], rounds: Mapping[str, Rounds],
                   overrides: Mapping[str, float] | None = None) -> tuple[RiskModel, list[str]]:
    """The model for these symbols now, and its warnings (the law's and each defaulted vol's)."""
    d = cfg.daemon
    history = history_of(symbols, rounds, choice.files, d.refit_min_returns)
    vols = {**cfg.policy.vols, **(overrides or {})}
    market, warnings = build_market(choice.law, symbols, history, default_vol=cfg.policy.default_vol,
                                    min_returns=d.refit_min_returns, overrides=vols)
    h = cfg.policy.horizon_hours
    if choice.kind == "learned":
        from keeper.risk.learned_model import LearnedRisk, feature_rows
        model: RiskModel = LearnedRisk(choice.bundle, LawRisk(choice.law, market, h, source=choice.source),
                                       feature_rows(history), source=choice.bundle_path)
    else:
        model = make_model(choice.kind, choice.law, market, h, source=choice.source, mc_paths=cfg.policy.mc_paths)
    return model, choice.warnings + [f"default vol for {w}" for w in warnings]


def model_for(cfg: Any, positions: Sequence[Any], *, reader: Any = None, block: int | None = None,
              price_files: Sequence[Path] = (), overrides: Mapping[str, float] | None = None,
              choice: ModelChoice | None = None, assets: Sequence[Any] = ()) -> tuple[RiskModel, list[str]]:
    """The configured model for ``positions`` outside the daemon (``plan``, ``rebalance``,
    ``stress``): the feeds' rounds through ``reader`` at ``block`` when given. ``assets``: every
    asset a vault could move (``AssetParams``), so top-up candidates not held yet have a vol."""
    from keeper.chain.oracle import OracleReader

    choice = choice or choose(cfg, price_files)
    syms = {**symbol_assets(positions), **{a.symbol: a.address for a in assets}}
    rounds = (chain_rounds(syms, reader.asset_feeds, oracle=OracleReader(reader.mc, []), head=block,
                           count=cfg.daemon.refit_rounds) if reader is not None else {})
    return assemble_model(cfg, choice, list(syms), rounds, overrides)
