"""The daemon's keeper: built whole in ``__init__``, ``startup()`` -> ``tick(block)`` at every new
block -> ``shutdown()``; ``run()`` hands it to the lifecycle runner (``keeper.daemon.runner``).

- ``__init__`` wires every part (connected client, readers, store, snapshot writer, metrics,
  alerter, I/O threads, executor); when a part fails, what was built before it is released.
- ``startup()``: the metrics server, the first read, the risk model, and (unless a dry run) the
  journal reconciled with the chain before any new action.
- ``tick()`` reads as read -> plan -> act -> settle -> report: the accounts the keeper can act for
  are read at the block (the header from the newHeads message; the journal check, fees, nonce and the
  vaults' balances and floors — laid out as last tick — in the background meanwhile); each vault is
  planned under its reserve (the most endangered first) and its actions go to the executor
  (``keeper.app.execution``: simulated in chunks while the next vaults are planned, then signed,
  journaled in one commit and broadcast in one batch per chunk, sent split-phase from this thread);
  the watch-only accounts are read at the same block while those transactions wait; every action
  is settled (receipts, same-nonce bumps); then alerts, metrics and the snapshot (to the
  background writer). A dry run's executor is the null one (``DryRun``): everything else is the
  same.
- garbage collection (``keeper.daemon.tick_gc.TickGC``): the objects loaded by ``startup`` are
  frozen; automatic collection is off during a tick, the young generations are collected after every
  tick and the old one every ``TickGC.full_every`` ticks when no newer head is waiting.
- the refit job swaps ``self.risk`` under ``tick_lock``, between ticks (``keeper.daemon.jobs``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keeper.alerts import alerter_from_config
from keeper.app.book_ticks import TickBooks
from keeper.app.books import VaultBook, asset_params, plan_books, policy_from
from keeper.app.execution import IO_THREADS, Pipeline
from keeper.app.executor import DryRun, Executor
from keeper.app.items import Item
from keeper.app.manual import Session, keeper_key, reconcile_journal
from keeper.app.perp_requests import PerpRequestWatch, RequestView
from keeper.app.reconcile import ReconcileReport
from keeper.app.recording import SnapshotWriter
from keeper.app.risk_setup import ModelChoice, assemble_model, chain_rounds, choose, symbol_assets
from keeper.app.session import one_chain
from keeper.app.wiring import build_reader
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import OracleReader
from keeper.config import Config
from keeper.daemon.heads import HeadFeed
from keeper.daemon.replica import ReplicaRole
from keeper.daemon.takeover import ready_to_lead
from keeper.daemon.tick_gc import TickGC
from keeper.domain import Action, ActionKind, Address, Position, Protocol
from keeper.errors import ConfigError, Halt, MinedReverted, Reverted
from keeper.plan.policy import Plan
from keeper.protocols.reader import Snapshot
from keeper.risk.model import RiskModel
from keeper.store import Store
from keeper.store.db import StoreUnreachable
from keeper.store.lease import Leases, StaleLeader, lease_name
from keeper.telemetry import Metrics, MetricsServer
from keeper.views import shown_address

if TYPE_CHECKING:
    from keeper.plan.whatif import AssetParams

log = logging.getLogger("keeper.daemon")


@dataclass
class _Tick:
    """One tick's reads: the acting accounts' snapshot, the assets, the vaults' books."""

    snap: Snapshot
    assets: list[AssetParams]
    books: list[VaultBook]
    session: Session
    requests: RequestView


class Keeper:
    def __init__(self, cfg: Config, chain: str | None = None, *, dry_run: bool = False,
                 price_files: Sequence[Path] = (), vols: dict[str, float] | None = None,
                 clock: Callable[[], float] = time.monotonic, replica: str | None = None) -> None:
        self.cfg = cfg
        self.dry_run = dry_run
        self.price_files = list(price_files)
        self.vols = vols or {}
        self.clock = clock
        self.stop = threading.Event()
        self.halted: Halt | None = None
        self.last_block: int | None = None
        self.last_block_at = clock()
        self.ticks = 0
        self.actions_sent = 0
        self.last_action_block: dict[str, int] = {}
        self._lock = threading.Lock()
        self.tick_lock = threading.Lock()  # held by a scheduled tick; the refit swaps the model under it
        self.heads: HeadFeed | None = None  # set by the runner
        self.model_choice: ModelChoice | None = None
        self.model_assets: dict[str, Address] = {}
        self.risk: RiskModel | None = None  # set by startup(), swapped by the refit job
        self.block_seconds: float | None = None  # measured from the heads' timestamps
        self._last_head: tuple[int, int] | None = None  # (block, timestamp) of the last tick
        self.metrics = Metrics()
        self.metrics_port: int | None = None
        self.gc = TickGC()  # collections between ticks, not inside them (started at the end of startup)
        self.phases: dict[str, float] = {}  # the last tick's time per phase (seconds)
        self._plan_s = 0.0  # the last tick's planning time (wall seconds), within plan_act
        self._read_split: dict[str, float] = {}  # the last tick's read: positions, books (wall seconds)
        self.last_snapshot: Snapshot | None = None  # every position at the last tick's block
        self._history_at: int | None = None  # chain time of the last snapshot written with its positions
        self.policy = policy_from(cfg)
        with contextlib.ExitStack() as built:  # a part that fails releases the ones built before it
            self.alerter = alerter_from_config(cfg.alerts)
            built.callback(self.alerter.close)
            self.name, self.ccfg, self.client = one_chain(cfg, chain)
            self.client.on_failover = self._on_failover
            # Two readers: the positions the keeper can act for are read (and acted on) first; watch-only
            # accounts are read while the tick's transactions wait to be mined, so a large watch list
            # does not delay the protective ones.
            acting = [a.address for a in self.ccfg.accounts if a.kind in ("vault", "owner")]
            watching = [a.address for a in self.ccfg.accounts if a.kind not in ("vault", "owner")]
            self.reader = build_reader(self.name, self.ccfg, client=self.client, accounts=acting)
            built.callback(self.reader.mc.close)
            self.watch_reader = (build_reader(self.name, self.ccfg, client=self.client, accounts=watching)
                                 if watching else None)
            if self.watch_reader is not None:
                built.callback(self.watch_reader.mc.close)
            perp = self.ccfg.perp
            # Gated GMX v1: follow the vaults' PositionRouter requests (see perp_requests).
            self.requests = (PerpRequestWatch(self.name, self.reader.mc, perp.vault, perp.position_router,
                                              perp.request_timeout_blocks) if perp and perp.position_router else None)
            self.store = Store.open(cfg.store.url)
            built.callback(self.store.close)
            self.recorder = SnapshotWriter(self.store, on_error=self._record_failed)
            built.callback(self.recorder.close)
            self.io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="keeper-io")
            built.callback(self.io.shutdown, wait=True, cancel_futures=True)
            for f in [self.io.submit(time.sleep, 0.01) for _ in range(IO_THREADS)]:
                f.result()  # start the threads now, not on the first tick that acts
            self.books = TickBooks(self.reader, self.ccfg, self.io)  # the vaults' books, tick to tick
            chain_id = self.client.expected_chain_id  # one_chain connected: the id is checked
            assert chain_id is not None
            self.executor: Executor = (DryRun() if dry_run else Pipeline(
                cfg, self.name, self.client, self.store, self.alerter, pool=self.io, key=keeper_key(cfg, chain_id)))
            # Replicas (stage 13): the lease decides, at every tick, whether this one sends (``_take_role``).
            self.role: ReplicaRole | None = None
            self._pipeline = self.executor if isinstance(self.executor, Pipeline) else None
            self._reconciled = 0  # the role's takeover count the journal was last reconciled for
            self._quiet = True  # the last tick launched nothing: a lease over the fair share may go
            self._alerted = 0  # the takeover count last alerted
            if replica is not None:
                if self._pipeline is None:
                    raise ConfigError("a replica cannot be a dry run: followers already send nothing")
                self.role = ReplicaRole(Leases(self.store), lease_name(self.name, self._pipeline.key.address),
                                        replica, cfg.daemon.lease_ttl_seconds, may_hand_over=lambda: self._quiet)
                self.executor = DryRun()  # following until the lease is this replica's
            self.server = (MetricsServer(self.metrics, cfg.telemetry.metrics_host, cfg.telemetry.metrics_port,
                                         health=self._health) if cfg.telemetry.metrics_port is not None else None)
            built.pop_all()  # built whole: from here shutdown() releases it all

    # --- lifecycle ---------------------------------------------------------------------------
    def startup(self) -> None:
        """The metrics server (``/healthz`` answers during a long start), the first read, the model, the
        journal reconciled (unless a dry run)."""
        if self.server is not None:
            self.metrics_port = self.server.start()
        snap = self._with_watched(self.reader.read())
        self.model_choice = choose(self.cfg, self.price_files)
        # every asset a vault could move into a position, held yet or not (a top-up candidate needs a vol)
        self.model_assets = {a.symbol: a.address for a in asset_params(self.reader, snap)}
        self.set_model(self.build_model(snap.positions, snap.block, stored=True))
        if self.role is not None:
            self.role.start()  # the journal is reconciled when (and each time) this replica takes the lease
        elif not self.dry_run:
            key = self.executor.key if isinstance(self.executor, Pipeline) else None
            report = reconcile_journal(self.cfg, self._session(snap), key=key)
            if report.rebroadcast:
                raise Halt("transactions from an earlier run are still pending; run 'keeper reconcile'")
            log.info("journal reconciled", extra={"event": "reconcile", "mined": report.mined,
                                                  "failed": report.failed, "abandoned": report.abandoned})
        self.last_block = snap.block
        self.last_block_at = self.clock()
        self.gc.start()
        log.info("keeper started", extra={"event": "startup", "chain": self.name, "block": snap.block,
                                          "positions": len(snap.positions), "dry_run": self.dry_run,
                                          "model": self._model().describe()})

    def run(self, install_signals: bool = True) -> int:
        """Start up, tick at every new block until stopped or halted, shut down (``Runner``)."""
        from keeper.daemon.runner import Runner

        return Runner(self, install_signals=install_signals).run()

    def shutdown(self) -> None:
        """Release every part (also after a failed start-up)."""
        self.metrics.set_up(False)
        if self.role is not None:
            self.role.stop(release=True)
            if self._pipeline is not None and self.executor is not self._pipeline:
                self._pipeline.close()
        if self.server is not None:
            self.server.stop()
        self.executor.close()
        self.io.shutdown(wait=True, cancel_futures=True)
        self.reader.mc.close()
        if self.watch_reader is not None:
            self.watch_reader.mc.close()
        self.recorder.close()
        self.store.close()
        self.gc.stop()
        self.alerter.close()
        log.info("keeper stopped", extra={"event": "shutdown", "ticks": self.ticks, "actions": self.actions_sent,
                                          "snapshots_written": self.recorder.written,
                                          "snapshots_coalesced": self.recorder.skipped})

    def halt(self, h: Halt) -> None:
        with self._lock:
            if self.halted is None:
                self.halted = h
        self.stop.set()

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
        """The risk model in use: ``startup`` sets it (``set_model``) before anything plans with it."""
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

    # --- one block: read -> plan -> act -> settle -> report ---------------------------------------
    def tick(self, block: int) -> int:
        """Protect every position at ``block``; returns the number of actions sent (or, in a dry run,
        planned)."""
        started, started_cpu = time.perf_counter(), time.thread_time()
        if self.role is not None:
            self._take_role()
        t = self._read(block)
        if self.role is not None and self._reconciled != self.role.state().takeovers:
            self._reconcile_takeover(t)
        read, read_cpu = time.perf_counter(), time.thread_time()
        try:
            launched, plans, p_liq, planned = self._plan_and_act(t)
            acted, acted_cpu = time.perf_counter(), time.thread_time()
            self.books.lay_out(t.snap, t.assets)
            snap = self._with_watched(t.snap)  # while the transactions (if any) wait for a block
            watched = time.perf_counter()
            done = planned + (self._settle(launched, started) if launched else 0)
            self._quiet = not launched
        except (StaleLeader, StoreUnreachable) as e:
            if self.role is None:
                raise
            # The journal refused this replica's writes (its lease is gone: paused past its expiry, or
            # cut off), or the store is out of reach, so its lease soon will be. Nothing it decided
            # since was broadcast; what it sent before, the next leader's reconciliation settles.
            # Follow from here (a follower needs no store), not a failed tick: it halts nothing.
            stale = isinstance(e, StaleLeader)
            log.warning(f"replica {self.role.holder}: {'journal writes refused' if stale else 'store unreachable'}"
                        f", following ({e})", extra={"event": "stale_leader" if stale else "store_lost",
                                                     "block": block})
            if stale:
                self.metrics.stale_refused(self.name)
                self.alerter.notify("replica_stale", "warning", f"{self.name}: replica {self.role.holder} refused",
                                    f"its journal writes were refused at block {block}: another replica leads; "
                                    f"following ({e})")
            self.role.step()
            self.executor = DryRun()
            return 0
        settled = time.perf_counter()
        # where the tick's time went (the executor's own split of "act" included), for the debug log
        # line and the benchmarks
        self.phases = {"read_s": read - started, "read_cpu_s": read_cpu - started_cpu, **self._read_split,
                       "plan_act_s": acted - read, "plan_s": self._plan_s,
                       "plan_act_cpu_s": acted_cpu - read_cpu, "watch_read_s": watched - acted,
                       "settle_s": settled - watched, **self.executor.timings}
        self._report(snap, plans, p_liq, block, started, acted=bool(launched))
        return done

    def _read(self, block: int) -> _Tick:
        """The acting accounts at ``block``, the vaults' books, their pending GMX requests; the
        executor's journal check, fees and nonce start first and run meanwhile."""
        # The books' read-ahead first: the read below waits for it, while the executor's tasks are
        # needed only at the first flush (the I/O pool runs IO_THREADS at a time, in order).
        self.books.start(block)  # the vaults' balances and floors, as laid out last tick
        self.executor.begin(block)
        t0 = time.perf_counter()
        snap = self.reader.read(block, self.heads.header(block) if self.heads is not None else None)
        t1 = time.perf_counter()
        # The vaults' pending GMX requests, read in the background while the books are read.
        gated = self._gated_vaults(snap)
        pending = self.io.submit(self._requests, snap, gated) if gated else None
        assets = asset_params(self.reader, snap)
        books = self.books.read(snap, assets)
        self._read_split = {"read_positions_s": t1 - t0, "read_books_s": time.perf_counter() - t1}
        requests = pending.result() if pending is not None else RequestView()
        self._mark_lead(snap)
        for book in books:
            for a in assets:
                if book.reserve is not None:
                    self.metrics.set_reserve(self.name, shown_address(book.vault), a.symbol,
                                             book.reserve.get(a.address) / 10**a.decimals)
        return _Tick(snap, assets, books, self._session(snap, assets, books), requests)

    def _plan_and_act(self, t: _Tick) -> tuple[list[tuple[Item, dict[str, Any]]], list[tuple[VaultBook, Plan]],
                                                dict[str, float], int]:
        """Plan each vault (the most endangered first) and hand its actions to the executor as soon
        as they are planned; returns the launched items, the plans, every P(liq) and the number of
        actions a dry run planned."""
        p_liq: dict[str, float] = {}
        launched: list[tuple[Item, dict[str, Any]]] = []
        plans: list[tuple[VaultBook, Plan]] = []  # alerts and skips are logged after the sends
        planned = 0

        def act(book: VaultBook, action: Action, fields: dict[str, Any], *, count: bool = True) -> None:
            nonlocal planned
            item = self.executor.add(t.session, book, action)  # its gas call starts in the background
            if item is None:  # the dry run's null executor
                log.info("would act", extra=fields)
                planned += count
            else:
                launched.append((item, fields))

        plans_of = plan_books(t.books, self._model(), t.assets, self.policy, t.snap.block, self.last_action_block)
        self._plan_s = 0.0  # of which planning itself (the rest: the executor's steps)
        while True:
            t0 = time.perf_counter()
            got = next(plans_of, None)
            self._plan_s += time.perf_counter() - t0
            if got is None:
                break
            book, plan = got
            p_liq.update(plan.p_liq)
            plans.append((book, plan))
            protecting = any(a.kind is not ActionKind.WITHDRAW_EXCESS for a in plan.actions)
            for action in plan.actions:
                if action.kind is ActionKind.WITHDRAW_EXCESS and protecting:
                    continue  # protect first; releases wait for a calm tick
                waiting = t.requests.blocked.get(action.target_key or action.position_key)
                if waiting and action.kind in (ActionKind.TOP_UP, ActionKind.REBALANCE, ActionKind.DELEVERAGE):
                    log.info("skipped", extra={"event": "skip", "position": action.target_key or action.position_key,
                                               "why": waiting})
                    continue
                r, sw = action.reason, action.swap
                act(book, action, {
                    "event": "decision", "position": action.position_key, "action": action.kind.value,
                    "asset": action.asset.symbol, "amount": action.amount, "usd": action.usd,
                    "p_before": r.p_before, "p_after": r.p_after, "health_before": r.health_before,
                    "health_after_estimate": r.health_after, "model": r.model, "why": r.note,
                    "dry_run": self.dry_run,
                    **({"sells": sw.sell_raw / 10**sw.collateral.decimals, "sells_asset": sw.collateral.symbol,
                        "swap_cost_usd": round(sw.loss_usd, 2)} if sw is not None else {})})
            # simulate the queued chunk; send what is simulated while planning on
            self.executor.step(remaining=len(t.books) - len(plans))
        if self.requests is not None and t.requests.decisions:
            for book, action in self.requests.maintenance(t.requests, t.books, self.alerter, self.name):
                act(book, action, {"event": "decision", "position": action.position_key, "action": action.kind.value,
                                   "request": action.request_key, "why": action.reason.note, "dry_run": self.dry_run},
                    count=False)
        self.executor.flush()  # journal, sign and broadcast the rest of the tick's actions
        self.executor.finish()
        return launched, plans, p_liq, planned

    def _settle(self, launched: list[tuple[Item, dict[str, Any]]], started: float) -> int:
        """Wait for every launched action. A revert (refused in the gas call, or mined: a race with
        the block) only skips its action; any other failure fails the tick after all the others are
        settled (the circuit breaker counts it)."""
        self.executor.settle_all([item for item, _ in launched])
        done, fatal = 0, None
        for item, fields in launched:
            action = item.action
            if item.sent_at is not None:
                fields = {**fields, "sent_ms": round((item.sent_at - started) * 1000, 1)}
            if item.error is not None:
                e = item.error
                self.books.forget(item.book.vault)  # read it in full next time
                self.metrics.action_failed(self.name, action.kind.value)
                log.error(f"refused: {e}", extra={**fields, "error": str(e), "stage": item.stage.value})
                self.alerter.notify("failure", "critical", f"{self.name}: {action.kind.value} failed", str(e),
                                    position=action.position_key)
                if not isinstance(e, Reverted | MinedReverted) and fatal is None:
                    fatal = e
                continue
            rc = item.receipt()
            self.metrics.action_sent(self.name, action.kind.value)
            self.alerter.notify("action", "info", f"{self.name}: {action.kind.value} {action.amount:g} "
                                f"{action.asset.symbol}", action.reason.note, position=action.position_key,
                                tx=rc.tx_hash)
            self.last_action_block[action.position_key] = rc.block
            self.actions_sent += 1
            done += 1
            log.info("acted", extra={**fields, "tx": rc.tx_hash, "block": rc.block})
        if fatal is not None:
            raise fatal
        return done

    def _record(self, snap: Snapshot, acted: bool) -> None:
        """The snapshot to the writer: every position once per ``store.history_interval_s`` of
        chain time and at every block the keeper acted at (what it acted on, for the record);
        otherwise only the price rounds and the checkpoint. Among replicas only the leader writes
        (they share the store)."""
        if self.role is not None and not self.role.state().leading:
            return
        interval = self.cfg.store.history_interval_s
        due = (interval <= 0 or acted or self._history_at is None
               or not 0 <= snap.timestamp - self._history_at < interval)  # (time going back: a reorg, write)
        if due:
            self._history_at = snap.timestamp
            self.recorder.submit(snap)
        else:
            self.recorder.submit(replace(snap, positions=[]))

    def _report(self, snap: Snapshot, plans: list[tuple[VaultBook, Plan]], p_liq: dict[str, float], block: int,
                started: float, *, acted: bool = False) -> None:
        """Unusable prices, model fallbacks, the plans' alerts and skips; the snapshot to the writer;
        the metrics."""
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
        for book, plan in plans:
            vault = shown_address(book.vault)
            for alert in plan.alerts:
                log.warning(alert.text, extra={"event": "alert", "vault": vault, "kind": alert.kind})
                kind = "reserve_short" if alert.kind == "reserve_short" else "failure"
                self.alerter.notify(kind, "critical", f"{self.name}: {kind.replace('_', ' ')}", alert.text,
                                    vault=vault)
            for key, why in plan.skipped:
                log.info("skipped", extra={"event": "skip", "position": key, "why": why})
        self.last_snapshot = snap
        self._record(snap, acted)
        self.metrics.observe_positions(self.name, snap.positions, p_liq)
        self.metrics.set_last_block(block)
        self.metrics.observe_tick(self.name, time.perf_counter() - started)
        self.ticks += 1
        log.debug("tick", extra={"event": "tick", "block": block, "seconds": time.perf_counter() - started,
                                 **{k: round(v, 4) for k, v in self.phases.items()}})

    # --- replicas -------------------------------------------------------------------------------
    def _take_role(self) -> None:
        """Lead (send through the pipeline, its journal fenced by this replica's lease) or follow (plan
        and send nothing), as the lease stands at the start of the tick. Leading again after a takeover
        waits for the journal's reconciliation (``_reconcile_takeover``)."""
        assert self.role is not None and self._pipeline is not None
        state = self.role.state()
        self.metrics.set_leader(self.name, state.leading, state.takeovers, state.lease_age(time.monotonic()))
        if state.leading and self._reconciled == state.takeovers:
            self._pipeline.journal.fence = state.fence()
            self.executor = self._pipeline
        else:
            self.executor = DryRun()

    def _reconcile_takeover(self, t: _Tick) -> None:
        """Newly leading: settle what the journal holds before this replica sends anything
        (``keeper.daemon.takeover``); until that allows it, follow one more tick."""
        assert self.role is not None and self._pipeline is not None
        state = self.role.state()
        if not state.leading:
            return
        holder = self.role.holder

        def found(report: ReconcileReport) -> None:
            epoch = state.lease.epoch if state.lease else None
            if self._alerted != state.takeovers:  # once per takeover (its reconciliation may take two ticks)
                self._alerted = state.takeovers
                self.alerter.notify("replica_takeover", "warning", f"{self.name}: replica {holder} leads",
                                    f"took the lease at epoch {epoch}; journal: {len(report.mined)} mined, "
                                    f"{len(report.failed)} failed, {len(report.abandoned)} abandoned, "
                                    f"{len(report.rebroadcast)} re-sent")
            log.warning("takeover: journal reconciled", extra={
                "event": "takeover", "epoch": epoch, "mined": report.mined, "failed": report.failed,
                "abandoned": report.abandoned, "rebroadcast": report.rebroadcast})

        if not ready_to_lead(self.cfg, t.session, self._pipeline, t.snap.block, found):
            return
        self._reconciled = state.takeovers
        self._pipeline.journal.fence = state.fence()
        self.executor = self._pipeline
        self._pipeline.begin(t.snap.block)  # this tick's nonce and journal checks (the read began a dry run)

    # --- gated GMX perps -----------------------------------------------------------------------
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

    def _gated_vaults(self, snap: Snapshot) -> list[Address]:
        """The vaults that hold gated perps (an owner-held perp cannot have a request of the
        vault's); none without a request watch."""
        if self.requests is None:
            return []
        acting = {a.acting_vault for a in self.ccfg.accounts if a.acting_vault}
        return sorted({p.account for p in snap.positions
                       if p.protocol is Protocol.PERP and p.extra.get("gated") and p.account in acting})

    def _requests(self, snap: Snapshot, vaults: list[Address] | None = None) -> RequestView:
        """The pending GMX PositionRouter requests of ``vaults`` (default: :meth:`_gated_vaults`)."""
        if self.requests is None:
            return RequestView()
        view = self.requests.read(self._gated_vaults(snap) if vaults is None else vaults, snap.block, snap.timestamp)
        for latency in view.settled:
            self.metrics.observe_request_latency(self.name, latency)
        return view
