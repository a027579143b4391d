"""The daemon's slow APScheduler jobs, beside the per-block tick: model refit and stress report.

- ``refit`` (every ``daemon.refit_interval_s``, default a day): the model's market is rebuilt as at
  start-up (``keeper.app.risk_setup``): per volatile asset the Chainlink rounds of its feed
  (``daemon.refit_rounds`` read back from the head) merged with the rounds the store recorded,
  bucketed into hourly closes and put through the law's vol forecast; price files, then the default
  vol (with a warning alert) where that is too short. The new model replaces the old one under the
  daemon's tick lock, so a tick runs with one model from start to end; the JSON line
  (``event: refit``) has the old and new vols with their sources. The law's fitted parameters stay.
- ``stress`` (every ``daemon.stress_interval_s``, default an hour): the Monte Carlo stress of
  ``keeper stress`` (``stress_cmd.run_stress``) on the newest stored snapshot, paths drawn from
  the deciding model's law and market; one JSON line (``event: stress``) with P(liq) per position per
  horizon and the worst positions, and the ``keeper_stress_pliq`` / ``keeper_stress_book_var_usd`` gauges.

Jobs read the chain through their own client (the tick's HTTP session is not shared across
threads) and never raise: an error is logged (``event: job_failed``) and counted
(``keeper_job_failures_total``)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keeper.app.wiring import build_client
from keeper.chain.multicall import Multicall
from keeper.domain import Position
from keeper.errors import ConfigError

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

    from keeper.daemon.keeper import Keeper

log = logging.getLogger("keeper.daemon.jobs")


def latest_positions(k: Keeper) -> tuple[int | None, list[Position]]:
    """The positions at the keeper's last tick; before its first one, those of the newest block
    the store holds for the keeper's chain (after the snapshot writer has written what it holds)."""
    last = getattr(k, "last_snapshot", None)
    if last is not None:
        return last.block, list(last.positions)
    recorder = getattr(k, "recorder", None)
    if recorder is not None:
        recorder.flush()
    rows = k.store.latest_snapshots(k.name)
    if not rows:
        return None, []
    block = max(r.block for r in rows)
    return block, [r.to_position() for r in rows if r.block == block]


def refit(k: Keeper) -> dict[str, Any]:
    """Rebuild the model's market (each asset's vol now, correlations) from fresh history and swap it
    in under the tick lock; returns the logged report. The law (fitted parameters) is kept."""
    block, positions = latest_positions(k)
    if not positions:
        report: dict[str, Any] = {"event": "refit", "block": None, "kept": True, "why": "no snapshot stored yet"}
        log.info("model kept: no snapshot stored yet", extra=report)
        return report
    old = k.risk.inputs()["vols"] if k.risk is not None else {}
    client = build_client(k.name, k.ccfg)
    mc = Multicall(client, k.ccfg.multicall, chunk_size=k.ccfg.chunk_size, in_flight=1)
    try:
        try:
            head: int | None = client.block_number()
        except Exception as e:  # stored rounds only
            head = None
            log.warning(f"refit: chain unreachable ({e}); stored rounds only", extra={"event": "refit_chain_down"})
        built = k.build_model(positions, head, stored=True, mc=mc)
    finally:
        mc.close()
    new = built[0].inputs()["vols"]
    with k.tick_lock:  # between ticks: a tick uses one model throughout
        k.set_model(built)
    report = {"event": "refit", "block": block, "old": old, "new": new, "model": built[0].describe(),
              "kept": old == new}
    log.info("model refitted", extra=report)
    return report


def stress(k: Keeper) -> dict[str, Any] | None:
    """The stress report of the newest stored snapshot; returns the logged line (None: nothing to stress)."""
    from keeper.app.stress import run_stress

    d = k.cfg.daemon
    block, positions = latest_positions(k)
    if not positions:
        log.info("stress report skipped: no snapshot stored yet", extra={"event": "stress_skipped"})
        return None
    try:
        report, notes = run_stress(positions, horizons_h=d.stress_horizons_h, n_paths=d.stress_paths,
                                   seed=block or 0, model=k.risk)
    except ConfigError as e:  # e.g. every price unusable: nothing to simulate
        log.warning(f"stress report skipped: {e}", extra={"event": "stress_skipped", "block": block})
        return None
    by_key = {p.key: p for p in positions}
    hs = list(report.horizons)
    rows: list[dict[str, Any]] = []
    gauge: list[tuple[Position, int, float]] = []
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
