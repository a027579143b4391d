"""The daemon: ``startup()`` -> ``tick(block)`` at every new block -> ``shutdown()``.

- startup: config and chain checks (chain id), journal reconciliation before any new action.
- tick: one read pinned to the block, a plan per vault under its reserve, each action simulated and
  sent through the vault (journaled first), the snapshot and checkpoint written in one transaction.
  ``dry_run`` plans and logs but sends nothing.
- scheduling (APScheduler): the block poll job (``max_instances=1, coalesce=True``: ticks never
  overlap, missed runs collapse into one, and only the newest head is ticked) and a heartbeat.
- supervision: SIGTERM/SIGINT set a flag and the loop stops after the current tick; a watchdog
  raises ``Halt`` when no new block arrives for ``daemon.watchdog_seconds``; ``daemon.max_consecutive_failures``
  failed ticks in a row trip a circuit breaker (``Halt``). Injectable clock for tests.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from keeper.config import Config
from keeper.daemon.actions import annual_vols, asset_params, plan_books, policy_from, read_books, risk_symbols
from keeper.daemon.inspect import one_chain
from keeper.daemon.manual import Session, execute, reconcile_journal, simulate_on_chain
from keeper.daemon.recording import record_snapshot
from keeper.daemon.wiring import build_reader
from keeper.domain import ActionKind
from keeper.errors import Halt, KeeperError, Reverted
from keeper.plan.risk_model import AnalyticRisk
from keeper.store import Store

log = logging.getLogger("keeper.daemon")
# A poll that finds the previous tick still running is skipped by design (max_instances=1).
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


class Keeper:
    def __init__(self, cfg: Config, chain: str | None = None, *, dry_run: bool = False,
                 price_files: Sequence[Path] = (), vols: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.chain_arg = chain
        self.dry_run = dry_run
        self.price_files = list(price_files)
        self.vols = vols or {}
        self.clock = clock
        self.stop = threading.Event()
        self.halted: Halt | None = None
        self.last_block: int | None = None
        self.last_block_at = clock()
        self.failures = 0
        self.ticks = 0
        self.actions_sent = 0
        self.last_action_block: dict[str, int] = {}
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------
    def startup(self) -> None:
        self.name, self.ccfg, self.client = one_chain(self.cfg, self.chain_arg)
        self.reader = build_reader(self.name, self.ccfg, client=self.client)
        self.policy = policy_from(self.cfg)
        self.store = Store.open(self.cfg.store.url)
        snap = self.reader.read()
        annual, source = annual_vols(risk_symbols(snap), self.cfg.policy.default_vol, self.price_files, self.vols)
        self.risk = AnalyticRisk.from_annual(annual, self.policy.horizon_hours, source=source)
        if not self.dry_run:
            report = reconcile_journal(self.cfg, self._session(snap))
            if report.rebroadcast:
                raise Halt("transactions from an earlier run are still pending; run 'keeper reconcile'")
            log.info("journal reconciled", extra={"event": "reconcile", "mined": report.mined,
                                                  "failed": report.failed, "abandoned": report.abandoned})
        self.last_block = snap.block
        self.last_block_at = self.clock()
        log.info("keeper started", extra={"event": "startup", "chain": self.name, "block": snap.block,
                                          "positions": len(snap.positions), "dry_run": self.dry_run,
                                          "model": self.risk.describe()})

    def shutdown(self) -> None:
        self.reader.mc.close()
        self.store.close()
        log.info("keeper stopped", extra={"event": "shutdown", "ticks": self.ticks, "actions": self.actions_sent})

    def _session(self, snap, assets=None, books=None) -> Session:
        return Session(self.name, self.client, self.reader, snap, assets or [], books or [], getattr(self, "risk", None),
                       self.policy)

    # --- one block ---------------------------------------------------------------------------
    def tick(self, block: int) -> int:
        """Protect every position at ``block``; returns the number of actions sent (or planned)."""
        started = time.perf_counter()
        snap = self.reader.read(block)
        assets = asset_params(self.reader, snap)
        books = read_books(self.reader, snap, self.ccfg, assets)
        session = self._session(snap, assets, books)
        done = 0
        for book, plan in plan_books(books, self.risk, assets, self.policy, block, self.last_action_block):
            for alert in plan.alerts:
                log.warning(alert, extra={"event": "alert", "vault": book.vault})
            for key, why in plan.skipped:
                log.info("skipped", extra={"event": "skip", "position": key, "why": why})
            for action in plan.actions:
                if action.kind is ActionKind.WITHDRAW_EXCESS and any(a.kind is not ActionKind.WITHDRAW_EXCESS
                                                                    for a in plan.actions):
                    continue  # protect first; releases wait for a calm tick
                r = action.reason
                fields = {"event": "decision", "position": action.position_key, "action": action.kind.value,
                          "asset": action.asset.symbol, "amount": action.amount, "usd": action.usd,
                          "p_before": r.p_before, "p_after": r.p_after, "health_before": r.health_before,
                          "health_after_estimate": r.health_after, "model": r.model, "why": r.note,
                          "dry_run": self.dry_run}
                if self.dry_run:
                    log.info("would act", extra=fields)
                    done += 1
                    continue
                try:
                    simulate_on_chain(self.cfg, session, book, action)
                    out, fresh = execute(self.cfg, session, book, action)
                except Reverted as e:
                    log.error(f"refused: {e}", extra={**fields, "error": str(e)})
                    continue
                self.last_action_block[action.position_key] = int(out.receipt["blockNumber"], 16)
                self.actions_sent += 1
                done += 1
                log.info("acted", extra={**fields, "tx": out.mined_hash,
                                         "health_after": fresh.health if fresh else None})
        record_snapshot(self.store, snap, kind="watch")
        self.ticks += 1
        log.debug("tick", extra={"event": "tick", "block": block, "seconds": time.perf_counter() - started})
        return done

    # --- scheduling --------------------------------------------------------------------------
    def _poll(self) -> None:
        if self.stop.is_set():
            return
        try:
            head = self.client.block_number()
            if self.last_block is None or head > self.last_block:
                self.tick(head)
                self.last_block, self.last_block_at = head, self.clock()
            self.failures = 0
        except KeeperError as e:
            self.failures += 1
            log.error("tick failed", extra={"event": "tick_failed", "error": str(e), "failures": self.failures})
            if isinstance(e, Halt) or self.failures >= self.cfg.daemon.max_consecutive_failures:
                self._halt(Halt(f"circuit breaker: {self.failures} failed ticks in a row; last: {e}"))

    def _heartbeat(self) -> None:
        log.info("heartbeat", extra={"event": "heartbeat", "block": self.last_block, "ticks": self.ticks,
                                     "actions": self.actions_sent})

    def _halt(self, h: Halt) -> None:
        with self._lock:
            if self.halted is None:
                self.halted = h
        self.stop.set()

    def run(self, install_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (exit 0) or a halt (watchdog, circuit breaker: non-zero)."""
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop.set())
        self.startup()
        sched = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        sched.add_job(self._poll, "interval", seconds=self.cfg.daemon.poll_interval, id="block_tick")
        sched.add_job(self._heartbeat, "interval", seconds=self.cfg.daemon.heartbeat_seconds, id="heartbeat")
        sched.start()
        try:
            while not self.stop.wait(0.2):
                stalled = self.clock() - self.last_block_at
                if stalled > self.cfg.daemon.watchdog_seconds:
                    self._halt(Halt(f"watchdog: no new block for {stalled:.0f} s"))
        finally:
            sched.shutdown(wait=True)  # the current tick finishes; no new one starts
            self.shutdown()
        if self.halted is not None:
            log.error(str(self.halted), extra={"event": "halt"})
            raise self.halted
        return 0
