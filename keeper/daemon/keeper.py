"""The daemon: ``startup()`` -> ``tick(block)`` at every new block -> ``shutdown()``.

- startup: config and chain checks (chain id), journal reconciliation before any new action.
- tick: the accounts the keeper can act for are read at the block (the header from the newHeads
  message; the journal check, fees, nonce and the vaults' balances and floors — laid out as last
  tick — in the background meanwhile), each vault is planned under its reserve (the most
  endangered first) and its actions are queued, then sent together through the vaults
  (``keeper.daemon.dispatch``: gas calls on the pending block in batches while the next vaults are
  planned, signed, journaled in one commit, broadcast in one batch); the watch-only accounts are
  read at the same block while those transactions wait; then every action is settled (receipts,
  same-nonce bumps) and the snapshot is handed to the background writer. ``dry_run`` plans and
  logs but sends nothing.
- new heads (``keeper.daemon.heads``, ``daemon.heads``): a WebSocket ``newHeads`` subscription when
  the node offers one (``ws_urls``, or derived from ``rpc_urls`` with ``"auto"``), polling
  ``eth_blockNumber`` every ``daemon.poll_interval`` otherwise; any WebSocket failure falls back to
  polling (warning, ``keeper_ws_fallbacks_total``) and the WebSocket is retried after
  ``daemon.ws_retry_seconds``; a subscription silent for ``daemon.ws_stall_seconds`` while the node
  is ahead counts as a failure.
- scheduling (APScheduler, ``max_instances=1, coalesce=True``): the block tick job — run at every
  poll interval and, with a subscription, woken at once by each head; ticks never overlap, a tick
  takes the newest head and ticks again while a newer one has arrived (heads in between are
  skipped) —, a heartbeat, and the slow jobs of ``keeper.daemon.jobs``: the model refit
  (``daemon.refit_interval_s``; the new ``self.risk`` is swapped in under ``tick_lock``, between
  ticks) and the stress report (``daemon.stress_interval_s``). Slow jobs log and count their
  errors and never stop the daemon.
- garbage collection (``keeper.daemon.tick_gc.TickGC``): the objects loaded by ``startup`` are
  frozen (``gc.freeze``);
  automatic collection is off during a tick, the young generations are collected after every tick
  and the old one every ``TickGC.full_every`` ticks when no newer head is waiting, so collection
  pauses land between ticks instead of on the decision path, and memory stays bounded.
- supervision: SIGTERM/SIGINT set a flag and the loop stops after the current tick; a watchdog
  raises ``Halt`` when no new block is ticked for ``daemon.watchdog_seconds`` (whichever source
  delivers heads); ``daemon.max_consecutive_failures`` failed ticks in a row trip a circuit breaker
  (``Halt``). Injectable clock for tests.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from keeper.app.books import (
    BookLayout,
    VaultBook,
    asset_params,
    book_layout,
    plan_books,
    policy_from,
    read_book_calls,
    read_books,
)
from keeper.app.manual import Session, reconcile_journal
from keeper.app.perp_requests import PerpRequestWatch, RequestView
from keeper.app.recording import SnapshotWriter
from keeper.app.risk_setup import ModelChoice, assemble_model, chain_rounds, choose, symbol_assets
from keeper.app.session import one_chain
from keeper.app.wiring import build_reader
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import OracleReader
from keeper.config import Config
from keeper.daemon import jobs
from keeper.daemon.dispatch import Dispatcher, Launched, outcome_of, receipt_of, sender_of
from keeper.daemon.heads import HeadFeed, ws_url_for
from keeper.daemon.tick_gc import TickGC
from keeper.domain import ActionKind, Position, Protocol
from keeper.errors import Halt, KeeperError, Reverted
from keeper.plan.planner import Plan
from keeper.protocols.reader import Snapshot
from keeper.risk.model import RiskModel
from keeper.store import Store
from keeper.telemetry import Metrics, MetricsServer

if TYPE_CHECKING:
    from keeper.alerts import Alerter
    from keeper.plan.whatif import AssetParams

log = logging.getLogger("keeper.daemon")
# A poll that finds the previous tick still running is skipped by design (max_instances=1).
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
# "Running job ... executed successfully" at every poll is noise; job errors are still logged.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)


def _alerter(cfg: Config) -> Alerter:
    import os

    from keeper.alerts import make_alerter

    url = os.environ.get(cfg.alerts.webhook_env) if cfg.alerts.webhook_env else None
    if cfg.alerts.webhook_env and not url:
        from keeper.errors import ConfigError

        raise ConfigError(f"alerts.webhook_env names {cfg.alerts.webhook_env}, which is not set")
    return make_alerter(url, cfg.alerts.format, min_interval_s=cfg.alerts.min_interval_s)


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
        self.tick_lock = threading.Lock()  # held by a scheduled tick; the refit swaps the model under it
        self.heads: HeadFeed | None = None
        self._layout: BookLayout | None = None  # the last tick's vault reads, read ahead by the next tick
        self._sched: BackgroundScheduler | None = None
        self.model_choice: ModelChoice | None = None
        self.model_assets: dict[str, str] = {}
        self.risk: RiskModel | None = None
        self.block_seconds: float | None = None  # measured from the heads' timestamps
        self._last_head: tuple[int, int] | None = None  # (block, timestamp) of the last tick
        self.metrics = Metrics()
        self.server: MetricsServer | None = None
        self.alerter = _alerter(cfg)
        self.gc = TickGC()  # collections between ticks, not inside them (started at the end of startup)

    # --- lifecycle ---------------------------------------------------------------------------
    def startup(self) -> None:
        self.name, self.ccfg, self.client = one_chain(self.cfg, self.chain_arg)
        self.client.on_failover = self._on_failover
        t = self.cfg.telemetry
        if t.metrics_port is not None:
            self.server = MetricsServer(self.metrics, t.metrics_host, t.metrics_port, health=self._health)
            self.metrics_port = self.server.start()
        # Two readers: the positions the keeper can act for are read (and acted on) first; watch-only
        # accounts are read while the tick's transactions wait to be mined, so a large watch list
        # does not delay the protective ones.
        acting = [a.address for a in self.ccfg.accounts if a.kind in ("vault", "owner")]
        watching = [a.address for a in self.ccfg.accounts if a.kind not in ("vault", "owner")]
        self.reader = build_reader(self.name, self.ccfg, client=self.client, accounts=acting)
        self.watch_reader = (build_reader(self.name, self.ccfg, client=self.client, accounts=watching)
                             if watching else None)
        self.policy = policy_from(self.cfg)
        perp = self.ccfg.perp
        # Gated GMX v1: follow the vaults' PositionRouter requests (see perp_requests).
        self.requests = (PerpRequestWatch(self.name, self.reader.mc, perp.vault, perp.position_router,
                                          perp.request_timeout_blocks) if perp and perp.position_router else None)
        self.store = Store.open(self.cfg.store.url)
        self.recorder = SnapshotWriter(self.store, on_error=self._record_failed)
        snap = self._with_watched(self.reader.read())
        self.model_choice = choose(self.cfg, self.price_files)
        # every asset a vault could move into a position, held yet or not (a top-up candidate needs a vol)
        self.model_assets = {a.symbol: a.address.lower() for a in asset_params(self.reader, snap)}
        self.set_model(self.build_model(snap.positions, snap.block, stored=True))
        if not self.dry_run:
            report = reconcile_journal(self.cfg, self._session(snap))
            if report.rebroadcast:
                raise Halt("transactions from an earlier run are still pending; run 'keeper reconcile'")
            log.info("journal reconciled", extra={"event": "reconcile", "mined": report.mined,
                                                  "failed": report.failed, "abandoned": report.abandoned})
            self.dispatcher = Dispatcher(self.cfg, self.name, self.client, self.store, self.alerter)
        self.last_block = snap.block
        self.last_block_at = self.clock()
        self.gc.start()
        log.info("keeper started", extra={"event": "startup", "chain": self.name, "block": snap.block,
                                          "positions": len(snap.positions), "dry_run": self.dry_run,
                                          "model": self._model().describe()})

    def build_model(self, positions: Sequence[Position], block: int | None, *, stored: bool,
                    mc: Multicall | None = None) -> tuple[RiskModel, list[str]]:
        """The configured model on fresh history: the feeds' rounds read back (through ``mc``, the
        tick's reader by default) and, with ``stored``, the store's; price files; default vols."""
        assert self.model_choice is not None
        syms = {**symbol_assets(positions), **self.model_assets}
        rounds = chain_rounds(syms, self.reader.asset_feeds, oracle=OracleReader(mc or self.reader.mc, []), head=block,
                              count=self.cfg.daemon.refit_rounds,
                              stored=(lambda feed: self.store.price_rounds(self.name, feed)) if stored else None)
        return assemble_model(self.cfg, self.model_choice, list(syms), rounds, self.vols)

    def _model(self) -> RiskModel:
        """The risk model in use: ``start`` sets it (``set_model``) before anything plans with it."""
        if self.risk is None:
            raise RuntimeError(f"{self.name}: no risk model yet")
        return self.risk

    def set_model(self, built: tuple[RiskModel, list[str]]) -> None:
        """Swap the model in (between ticks: callers hold ``tick_lock`` once the daemon runs) and
        alert on each default it had to take."""
        model, warnings = built
        self.risk = model
        self.metrics.set_model_vols(self.name, {s: float(v["annual"]) for s, v in model.inputs()["vols"].items()})
        for w in warnings:
            log.warning(f"risk model: {w}", extra={"event": "model_default", "why": w})
            self.alerter.notify("model_default", "warning", f"{self.name}: risk model default", w)

    def _health(self) -> tuple[bool, str]:
        stalled = self.clock() - self.last_block_at
        ok = self.halted is None and stalled <= self.cfg.daemon.watchdog_seconds
        halted = f"; halted: {self.halted}" if self.halted else ""
        return ok, f"last block {self.last_block}, {stalled:.0f} s ago" + halted

    def _on_failover(self, frm: str, to: str, why: str) -> None:
        self.metrics.rpc_failover(self.name)
        log.warning("RPC failover", extra={"event": "rpc_failover", "from": frm, "to": to, "why": why})
        self.alerter.notify("rpc_failover", "warning", f"{self.name}: RPC failover", why, **{"from": frm, "to": to})

    def shutdown(self) -> None:
        self.metrics.set_up(False)
        if self.server is not None:
            self.server.stop()
        self.alerter.close()
        if getattr(self, "dispatcher", None) is not None:
            self.dispatcher.close()
        self.reader.mc.close()
        if self.watch_reader is not None:
            self.watch_reader.mc.close()
        self.recorder.close()
        self.store.close()
        self.gc.stop()
        log.info("keeper stopped", extra={"event": "shutdown", "ticks": self.ticks, "actions": self.actions_sent,
                                          "snapshots_written": self.recorder.written,
                                          "snapshots_coalesced": self.recorder.skipped})

    def _record_failed(self, block: int, e: Exception) -> None:
        log.error("recording the snapshot failed", extra={"event": "record_failed", "block": block, "error": str(e)})

    def _session(self, snap: Snapshot, assets: list[AssetParams] | None = None,
                 books: list[VaultBook] | None = None) -> Session:
        return Session(self.name, self.client, self.reader, snap, assets or [], books or [], self._model(),
                       self.policy)

    def read_all(self, block: int | None = None) -> Snapshot:
        """Every watched position (acting and watch-only accounts) at one block."""
        return self._with_watched(self.reader.read(block))

    def _with_watched(self, snap: Snapshot) -> Snapshot:
        """``snap`` (the acting accounts) plus the watch-only accounts read at the same block."""
        if self.watch_reader is None:
            return snap
        w = self.watch_reader.read(snap.block, (snap.block_hash, snap.timestamp))
        return replace(snap, positions=snap.positions + w.positions, prices={**w.prices, **snap.prices})

    # --- one block ---------------------------------------------------------------------------
    def tick(self, block: int) -> int:
        """Protect every position at ``block``; returns the number of actions sent (or planned)."""
        started = time.perf_counter()
        ahead = None
        if not self.dry_run:
            self.dispatcher.begin(block)  # the journal check, fee history and nonce, while the chain is read
            if self._layout is not None:  # the vaults' balances and floors, as laid out last tick
                ahead = (self._layout, self.dispatcher.pool.submit(read_book_calls, self.reader, self._layout, block))
        snap = self.reader.read(block, self.heads.header(block) if self.heads is not None else None)
        # The vaults' pending GMX requests, read in the background while the books are read.
        pending = (self.dispatcher.pool.submit(self._requests, snap) if self.requests is not None and not self.dry_run
                   else None)
        assets = asset_params(self.reader, snap)
        prefetched = None
        if ahead is not None:
            with contextlib.suppress(KeeperError):  # read again below
                prefetched = (ahead[0], block, ahead[1].result())
        books = read_books(self.reader, snap, self.ccfg, assets, prefetched=prefetched)
        session = self._session(snap, assets, books)
        requests = pending.result() if pending is not None else self._requests(snap)
        self._mark_lead(snap)
        done = 0
        for book in books:
            for a in assets:
                if book.reserve is not None:
                    self.metrics.set_reserve(self.name, book.vault, a.symbol,
                                             book.reserve.get(a.address) / 10**a.decimals)
        p_liq: dict[str, float] = {}
        launched: list[tuple[Launched, dict[str, Any]]] = []
        later: list[tuple[VaultBook, Plan]] = []  # alerts and skips are logged after the sends
        for book, plan in plan_books(books, self._model(), assets, self.policy, block, self.last_action_block):
            p_liq.update(plan.p_liq)
            later.append((book, plan))
            for action in plan.actions:
                if action.kind is ActionKind.WITHDRAW_EXCESS and any(a.kind is not ActionKind.WITHDRAW_EXCESS
                                                                    for a in plan.actions):
                    continue  # protect first; releases wait for a calm tick
                waiting = requests.blocked.get(action.target_key or action.position_key)
                if waiting and action.kind in (ActionKind.TOP_UP, ActionKind.REBALANCE):
                    log.info("skipped", extra={"event": "skip", "position": action.target_key or action.position_key,
                                               "why": waiting})
                    continue
                r = action.reason
                fields: dict[str, Any] = {
                    "event": "decision", "position": action.position_key, "action": action.kind.value,
                    "asset": action.asset.symbol, "amount": action.amount, "usd": action.usd,
                    "p_before": r.p_before, "p_after": r.p_after, "health_before": r.health_before,
                    "health_after_estimate": r.health_after, "model": r.model, "why": r.note,
                    "dry_run": self.dry_run}
                if self.dry_run:
                    log.info("would act", extra=fields)
                    done += 1
                    continue
                # Its gas is estimated now, in the background, while the next vault is planned.
                launched.append((self.dispatcher.add(session, book, action), fields))
            if not self.dry_run and self.dispatcher.due():
                self.dispatcher.flush()
        if self.requests is not None and requests.decisions:
            for book, action in self.requests.maintenance(requests, books, self.alerter, self.name):
                fields = {"event": "decision", "position": action.position_key, "action": action.kind.value,
                          "request": action.request_key, "why": action.reason.note, "dry_run": self.dry_run}
                if self.dry_run:
                    log.info("would act", extra=fields)
                    continue
                launched.append((self.dispatcher.add(session, book, action), fields))
        if not self.dry_run:
            self.dispatcher.flush()  # journal, sign and broadcast the tick's actions together
            self.dispatcher.finish()
        self._layout = book_layout(snap, self.ccfg, assets)
        snap = self._with_watched(snap)  # while the transactions (if any) wait for a block
        if launched:
            done += self._settle(launched, started)
        for p in snap.positions:
            if not p.price_ok:
                if (p.price_issue or "").startswith("health unverified"):
                    # The protocol's own health disagrees with ours (or could not be read): the
                    # maths does not reproduce this pool; never acted on, and worth a human's look.
                    log.error("health unverified: no action", extra={"event": "health_unverified",
                                                                      "position": p.key, "why": p.price_issue})
                    self.alerter.notify("health_unverified", "critical", f"{self.name}: health unverified",
                                        p.price_issue or "", position=p.key)
                    continue
                log.warning("price unusable: no action", extra={"event": "stale_oracle", "position": p.key,
                                                                 "why": p.price_issue})
                self.alerter.notify("stale_oracle", "warning", f"{self.name}: price unusable", p.price_issue or "",
                                    position=p.key)
        fell_back = getattr(self.risk, "fallbacks", None)
        if fell_back:  # the learned model could not compute its features for these assets
            why = f"learned model features unavailable for {', '.join(sorted(fell_back))}: the tail model decided"
            log.warning(why, extra={"event": "model_fallback", "assets": sorted(fell_back), "block": block})
            self.alerter.notify("model_fallback", "warning", f"{self.name}: risk model fallback", why)
            fell_back.clear()
        for book, plan in later:
            for alert in plan.alerts:
                log.warning(alert, extra={"event": "alert", "vault": book.vault})
                kind = "reserve_short" if "reserve short" in alert else "failure"
                self.alerter.notify(kind, "critical", f"{self.name}: {kind.replace('_', ' ')}", alert, vault=book.vault)
            for key, why in plan.skipped:
                log.info("skipped", extra={"event": "skip", "position": key, "why": why})
        self.recorder.submit(snap)
        self.metrics.observe_positions(self.name, snap.positions, p_liq)
        self.metrics.set_last_block(block)
        self.metrics.observe_tick(self.name, time.perf_counter() - started)
        self.ticks += 1
        log.debug("tick", extra={"event": "tick", "block": block, "seconds": time.perf_counter() - started})
        return done

    def _mark_lead(self, snap: Snapshot) -> None:
        """Gated GMX perps: margin lands a PositionRouter request later; the planner forecasts over
        the horizon plus that delay (the configured latency, or the measured one when longer, in
        blocks at the chain's measured block time)."""
        prev, self._last_head = self._last_head, (snap.block, snap.timestamp)
        if prev is not None and snap.block > prev[0] and snap.timestamp >= prev[1]:
            per_block = (snap.timestamp - prev[1]) / (snap.block - prev[0])
            self.block_seconds = per_block if self.block_seconds is None else 0.8 * self.block_seconds + 0.2 * per_block
        perp = self.ccfg.perp
        if self.requests is None or perp is None:  # requests are followed only with a perp config
            return
        blocks = max(perp.request_latency_blocks, self.requests.measured_latency())
        hours = blocks * (self.block_seconds or 1.0) / 3600.0
        for p in snap.positions:
            if p.perp is not None and p.extra.get("gated"):
                p.extra["lead_hours"] = hours

    def _requests(self, snap: Snapshot) -> RequestView:
        """The pending GMX PositionRouter requests of the vaults that hold gated perps (an empty view
        without any; an owner-held perp cannot have a request of the vault's)."""
        if self.requests is None:
            return RequestView()
        acting = {a.acting_vault.lower() for a in self.ccfg.accounts if a.acting_vault}
        vaults = sorted({p.account.lower() for p in snap.positions
                         if p.protocol is Protocol.PERP and p.extra.get("gated") and p.account.lower() in acting})
        view = self.requests.read(vaults, snap.block, snap.timestamp)
        for latency in view.settled:
            self.metrics.observe_request_latency(self.name, latency)
        return view

    def _settle(self, launched: list[tuple[Launched, dict[str, Any]]], started: float) -> int:
        """Wait for every launched action (``dispatch``). A revert refused in the estimate only
        skips its action; any other failure fails the tick after all the others are settled (the
        circuit breaker counts it)."""
        self.dispatcher.settle_all([item for item, _ in launched])
        done, fatal = 0, None
        for item, fields in launched:
            action = item.action
            if item.sent_at is not None:
                fields = {**fields, "sent_ms": round((item.sent_at - started) * 1000, 1)}
            if item.error is not None:
                e = item.error
                self.metrics.action_failed(self.name, action.kind.value)
                log.error(f"refused: {e}", extra={**fields, "error": str(e)})
                self.alerter.notify("failure", "critical", f"{self.name}: {action.kind.value} failed", str(e),
                                    position=action.position_key)
                # A revert refused before sending, or one mined (a race with the block: recorded as
                # "reverted" in the journal), only skips its action; other failures fail the tick.
                mined_revert = sender_of(item).last_receipt is not None
                if not isinstance(e, Reverted) and not mined_revert and fatal is None:
                    fatal = e
                continue
            out = outcome_of(item)
            self.metrics.action_sent(self.name, action.kind.value)
            self.alerter.notify("action", "info", f"{self.name}: {action.kind.value} {action.amount:g} "
                                f"{action.asset.symbol}", action.reason.note, position=action.position_key,
                                tx=out.mined_hash)
            block_mined = int(receipt_of(out)["blockNumber"], 16)
            self.last_action_block[action.position_key] = block_mined
            self.actions_sent += 1
            done += 1
            log.info("acted", extra={**fields, "tx": out.mined_hash, "block": block_mined})
        if fatal is not None:
            raise fatal
        return done

    # --- scheduling --------------------------------------------------------------------------
    def _poll(self) -> None:
        if self.stop.is_set():
            return
        try:
            while not self.stop.is_set():
                head = self._newest_head()
                if self.last_block is not None and head <= self.last_block:
                    break
                with self.tick_lock:
                    try:
                        with self.gc.tick():
                            self.tick(head)
                    finally:
                        # collect now, the old generation only when no newer head waits for a tick
                        newer = self.heads.newest() if self.heads is not None else None
                        self.gc.after(idle=newer is None or newer <= head)
                self.last_block, self.last_block_at = head, self.clock()
                if self.heads is None or self.heads.newest() is None:
                    break  # polling: the next poll asks again; a subscription may hold a newer head already
            self.failures = 0
        except KeeperError as e:
            self.failures += 1
            log.error("tick failed", extra={"event": "tick_failed", "error": str(e), "failures": self.failures})
            if isinstance(e, Halt) or self.failures >= self.cfg.daemon.max_consecutive_failures:
                self._halt(Halt(f"circuit breaker: {self.failures} failed ticks in a row; last: {e}"))

    def _newest_head(self) -> int:
        """The subscription's newest head; the node's (``eth_blockNumber``) while polling, or when the
        subscription has been silent for ``daemon.ws_stall_seconds`` and the node is ahead of it."""
        heads = self.heads
        ws = heads.newest() if heads is not None else None
        if ws is None or heads is None:
            return self.client.block_number()
        silent = self.clock() - heads.head_at
        if silent > self.cfg.daemon.ws_stall_seconds:
            polled = self.client.block_number()
            if polled > ws:
                heads.stalled(f"no head from the WebSocket for {silent:.0f} s while the node is at block {polled}")
                return polled
        return ws

    def _wake(self, _head: int) -> None:
        """A new head from the subscription: run the tick job now (never a second instance)."""
        sched = self._sched
        if sched is not None and not self.stop.is_set():
            # the scheduler may be shutting down; the interval run would come anyway
            with contextlib.suppress(Exception):
                sched.modify_job("block_tick", next_run_time=datetime.now(UTC))

    def _heads_down(self, why: str) -> None:
        self.metrics.ws_fallback(self.name)
        self.metrics.set_head_source(self.name, False)

    def _heartbeat(self) -> None:
        log.info("heartbeat", extra={"event": "heartbeat", "block": self.last_block, "ticks": self.ticks,
                                     "actions": self.actions_sent,
                                     "heads": self.heads.source if self.heads is not None else "poll"})

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
        jobs.add_jobs(self, sched)
        self._sched = sched
        d = self.cfg.daemon
        self.heads = HeadFeed(ws_url_for(self.ccfg, d.heads), chain_id=self.client.expected_chain_id,
                              on_head=self._wake, on_fallback=self._heads_down,
                              on_restore=lambda: self.metrics.set_head_source(self.name, True),
                              open_timeout=min(self.ccfg.timeout, 10.0), retry_s=d.ws_retry_seconds, clock=self.clock)
        self.metrics.set_head_source(self.name, False)
        sched.start()
        self.heads.start()
        try:
            while not self.stop.wait(0.2):
                stalled = self.clock() - self.last_block_at
                if stalled > self.cfg.daemon.watchdog_seconds:
                    self._halt(Halt(f"watchdog: no new block for {stalled:.0f} s"))
        finally:
            self.heads.stop()
            sched.shutdown(wait=True)  # the current tick finishes; no new one starts
            self.shutdown()
        if self.halted is not None:
            log.error(str(self.halted), extra={"event": "halt"})
            self.alerter.notify("halt", "critical", f"{self.name}: keeper halted", str(self.halted))
            self.alerter.close()
            raise self.halted
        return 0
