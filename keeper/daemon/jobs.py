"""The daemon's slow APScheduler jobs, beside the per-block tick: model refit and stress report.

- ``refit`` (every ``daemon.refit_interval_s``, default a day): per volatile asset the keeper
  watches, the Chainlink rounds of its feed (``OracleReader.backfill``, ``daemon.refit_rounds`` back
  from the head) merged with the rounds the store recorded at each tick, bucketed into hourly closes
  and put through the EWMA (``keeper.risk.refit``). The new ``AnalyticRisk`` replaces the old one
  under the daemon's tick lock, so a tick runs with one model from start to end. Operator overrides
  (``--vol``) and stablecoins (1%) are kept; an asset with fewer than ``daemon.refit_min_returns``
  hourly returns keeps its old vol, and with no new vol at all the model is kept — the JSON line
  (``event: refit``) says which, with the old and new vols and their sources.
- ``stress`` (every ``daemon.stress_interval_s``, default an hour): the Monte Carlo stress of
  ``keeper stress`` (``stress_cmd.run_stress``) on the newest stored snapshot, with the model's
  vols; one JSON line (``event: stress``) with P(liq) per position per horizon and the worst
  positions, and the ``keeper_stress_pliq`` / ``keeper_stress_book_var_usd`` gauges.

Jobs read the chain through their own client (the tick's HTTP session is not shared across
threads) and never raise: an error is logged (``event: job_failed``) and counted
(``keeper_job_failures_total``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keeper.chain.multicall import Multicall
from keeper.chain.oracle import OracleReader
from keeper.daemon.wiring import build_client
from keeper.domain import Position
from keeper.errors import ConfigError
from keeper.plan.risk_model import AnalyticRisk
from keeper.risk.refit import annual_ewma_vol, bucket_closes

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from keeper.daemon.keeper import Keeper

log = logging.getLogger("keeper.daemon.jobs")
STABLES = {"USDC", "USDT", "DAI", "USD", "FRAX", "LUSD"}


def latest_positions(k: Keeper) -> tuple[int | None, list[Position]]:
    """The positions of the newest block the store holds for the keeper's chain (after the
    snapshot writer has written what it holds)."""
    recorder = getattr(k, "recorder", None)
    if recorder is not None:
        recorder.flush()
    rows = k.store.latest_snapshots(k.name)
    if not rows:
        return None, []
    block = max(r.block for r in rows)
    return block, [r.to_position() for r in rows if r.block == block]


def _symbol_assets(positions: list[Position]) -> dict[str, str]:
    """Risk symbol -> asset address (lower case), as the risk model names assets."""
    out: dict[str, str] = {}
    for p in positions:
        assets = ([p.perp.index] if p.perp is not None else []) + [leg.asset for leg in p.legs]
        for a in assets:
            if a.symbol != "USD":
                out.setdefault(a.symbol, a.address.lower())
    return out


def _feed_history(k: Keeper, oracle: OracleReader | None, feed: str, block: int | None) -> tuple[list, list, str]:
    """(times, prices, where from) of one feed: Chainlink rounds read back, plus the stored ones."""
    rounds: dict[int, tuple[int, int]] = {}
    notes = []
    if oracle is not None and block is not None:
        try:
            for r in oracle.backfill(feed, block, count=k.cfg.daemon.refit_rounds):
                rounds[r.round_id] = (r.updated_at, r.answer)
            notes.append(f"{len(rounds)} Chainlink rounds")
        except Exception as e:  # the stored rounds may still do
            notes.append(f"backfill failed ({type(e).__name__}: {e})")
    stored = 0
    for r in k.store.price_rounds(k.name, feed):
        if r.round_id not in rounds and r.updated_at > 0:
            rounds[r.round_id] = (r.updated_at, r.answer)
            stored += 1
    notes.append(f"{stored} more stored")
    times = [t for t, _a in rounds.values()]
    prices = [a for _t, a in rounds.values()]
    return times, prices, ", ".join(notes)


def refit(k: Keeper) -> dict[str, Any]:
    """Re-estimate the vols and swap the model; returns the logged report."""
    d = k.cfg.daemon
    block, positions = latest_positions(k)
    old = dict(k.annual_vols)
    new, sources = dict(old), {}
    client = build_client(k.name, k.ccfg)
    mc = Multicall(client, k.ccfg.multicall, chunk_size=k.ccfg.chunk_size, in_flight=1)
    try:
        try:
            head = client.block_number()
            oracle: OracleReader | None = OracleReader(mc, [])
        except Exception as e:
            head, oracle = None, None
            sources["chain"] = f"unreachable ({e}); stored rounds only"
        for sym, asset in _symbol_assets(positions).items():
            feed = k.reader.asset_feeds.get(asset)
            if sym in k.vols:
                new[sym], sources[sym] = k.vols[sym], "override kept"
            elif sym.upper() in STABLES:
                new[sym], sources[sym] = 0.01, "stablecoin"
            elif feed is None:
                sources[sym] = "no feed for this asset: kept"
            else:
                times, prices, where = _feed_history(k, oracle, feed, head)
                closes = bucket_closes(times, prices, 3600.0)
                vol = annual_ewma_vol(closes, d.refit_lambda, min_returns=d.refit_min_returns)
                if vol is None:
                    sources[sym] = (f"too little history: {max(len(closes) - 1, 0)} hourly returns "
                                    f"(< {d.refit_min_returns}) from {where}: kept")
                else:
                    new[sym] = vol
                    sources[sym] = f"EWMA {d.refit_lambda:g} of {len(closes) - 1} hourly returns from {where}"
    finally:
        mc.close()
    changed = {s: v for s, v in new.items() if not math.isclose(v, old.get(s, math.nan), rel_tol=1e-12)}
    report = {"event": "refit", "block": block, "old": old, "new": new, "sources": sources, "kept": not changed}
    if changed:
        model = AnalyticRisk.from_annual(new, k.policy.horizon_hours,
                                         source=f"EWMA refit at block {block}: " +
                                                "; ".join(f"{s} {v:.0%}" for s, v in sorted(new.items())))
        with k.tick_lock:  # between ticks: a tick uses one model throughout
            k.risk, k.annual_vols = model, new
        k.metrics.set_model_vols(k.name, new)
        log.info("model refitted", extra=report)
    else:
        why = "no snapshot stored yet" if block is None else "too little history or nothing moved"
        log.info(f"model kept: {why}", extra={**report, "why": why})
    return report


def stress(k: Keeper) -> dict[str, Any] | None:
    """The stress report of the newest stored snapshot; returns the logged line (None: nothing to stress)."""
    from keeper.daemon.stress_cmd import run_stress

    d = k.cfg.daemon
    block, positions = latest_positions(k)
    if not positions:
        log.info("stress report skipped: no snapshot stored yet", extra={"event": "stress_skipped"})
        return None
    try:
        report, notes = run_stress(positions, horizons_h=d.stress_horizons_h, n_paths=d.stress_paths,
                                   seed=block or 0, price_files=k.price_files, vol_overrides=dict(k.annual_vols))
    except ConfigError as e:  # e.g. every price unusable: nothing to simulate
        log.warning(f"stress report skipped: {e}", extra={"event": "stress_skipped", "block": block})
        return None
    by_key = {p.key: p for p in positions}
    hs = list(report.horizons)
    rows, gauge = [], []
    for i, key in enumerate(report.keys):
        p_liq = {str(h): float(report.prob[j, i]) for j, h in enumerate(hs)}
        rows.append({"position": key, "label": report.labels[i], "p_liq": p_liq,
                     "expected_loss_usd": float(report.expected_loss[i])})
        gauge += [(by_key[key], h, float(report.prob[j, i])) for j, h in enumerate(hs) if key in by_key]
    worst = sorted(rows, key=lambda r: r["p_liq"][str(hs[-1])], reverse=True)[:3]
    line = {"event": "stress", "block": block, "horizons_h": hs, "paths": report.n_paths, "positions": rows,
            "worst": [{"position": r["position"], "p_liq": r["p_liq"][str(hs[-1])]} for r in worst],
            "book_var_usd": float(report.book_var), "book_es_usd": float(report.book_es), "calibration": notes}
    k.metrics.set_stress(k.name, gauge, float(report.book_var))
    log.info("stress report", extra=line)
    return line


def guarded(k: Keeper, name: str, job: Callable[[Keeper], Any]) -> Callable[[], None]:
    """A job the scheduler can run: errors are logged and counted, never raised."""
    def run() -> None:
        if k.stop.is_set():
            return
        try:
            job(k)
        except Exception as e:  # a slow job must never take the daemon down
            k.metrics.job_done(name, ok=False)
            log.error(f"{name} job failed: {type(e).__name__}: {e}", exc_info=True,
                      extra={"event": "job_failed", "job": name, "error": str(e)})
        else:
            k.metrics.job_done(name)
    return run


def add_jobs(k: Keeper, sched: BaseScheduler) -> None:
    d = k.cfg.daemon
    sched.add_job(guarded(k, "refit", refit), "interval", seconds=d.refit_interval_s, id="refit")
    sched.add_job(guarded(k, "stress", stress), "interval", seconds=d.stress_interval_s, id="stress")
