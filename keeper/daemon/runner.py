"""The daemon's lifecycle around a :class:`~keeper.daemon.keeper.Keeper`: start-up, the head source,
the scheduler, the watchdog, the circuit breaker, signals and shut-down.

- new heads (``keeper.daemon.heads``, ``daemon.heads``): a WebSocket ``newHeads`` subscription when
  the node offers one (``ws_urls``, or derived from ``rpc_urls`` with ``"auto"``), polling
  ``eth_blockNumber`` every ``daemon.poll_interval`` otherwise; any WebSocket failure falls back to
  polling (warning, ``keeper_ws_fallbacks_total``) and the WebSocket is retried after
  ``daemon.ws_retry_seconds``; a subscription silent for ``daemon.ws_stall_seconds`` while the node
  is ahead counts as a failure.
- scheduling (APScheduler, ``max_instances=1, coalesce=True``): the block tick job — run at every
  poll interval and, with a subscription, woken at once by each head; ticks never overlap, a tick
  takes the newest head and ticks again while a newer one has arrived (heads in between are
  skipped) —, a heartbeat, and the slow jobs of ``keeper.daemon.jobs`` (model refit, stress report).
- supervision: SIGTERM/SIGINT set ``keeper.stop`` and the loop ends after the current tick; a
  watchdog halts when no new block is ticked for ``daemon.watchdog_seconds`` (whichever source
  delivers heads); ``daemon.max_consecutive_failures`` failed ticks in a row — any exception, a bug
  as much as a dead RPC — trip the circuit breaker. A halt exits non-zero (``Halt``).
- start-up runs inside the same ``try/finally`` as the loop: a failed start releases what the
  keeper holds (metrics server, store, writer thread, I/O threads).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler

from keeper.daemon import jobs
from keeper.daemon.heads import HeadFeed, ws_url_for
from keeper.errors import Halt, KeeperError

if TYPE_CHECKING:
    from keeper.daemon.keeper import Keeper

log = logging.getLogger("keeper.daemon")
# A poll that finds the previous tick still running is skipped by design (max_instances=1).
logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
# "Running job ... executed successfully" at every poll is noise; job errors are still logged.
logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)


class Runner:
    def __init__(self, keeper: Keeper, *, install_signals: bool = True) -> None:
        self.k = keeper
        self.install_signals = install_signals
        self.failures = 0
        self.sched: BackgroundScheduler | None = None

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (exit 0) or a halt (watchdog, circuit breaker: raises ``Halt``)."""
        k = self.k
        if self.install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: k.stop.set())
        sched: BackgroundScheduler | None = None
        try:
            k.startup()
            d = k.cfg.daemon
            sched = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True,
                                                      "misfire_grace_time": None})
            sched.add_job(self.poll, "interval", seconds=d.poll_interval, id="block_tick")
            sched.add_job(self.heartbeat, "interval", seconds=d.heartbeat_seconds, id="heartbeat")
            jobs.add_jobs(k, sched)
            self.sched = sched
            k.heads = HeadFeed(ws_url_for(k.ccfg, d.heads), chain_id=k.client.expected_chain_id,
                               on_head=self.wake, on_fallback=self.heads_down,
                               on_restore=lambda: k.metrics.set_head_source(k.name, True),
                               open_timeout=min(k.ccfg.timeout, 10.0), retry_s=d.ws_retry_seconds, clock=k.clock)
            k.metrics.set_head_source(k.name, False)
            sched.start()
            k.heads.start()
            while not k.stop.wait(0.2):
                stalled = k.clock() - k.last_block_at
                if stalled > d.watchdog_seconds:
                    self.halt(Halt(f"watchdog: no new block for {stalled:.0f} s"))
        finally:
            if k.heads is not None:
                k.heads.stop()
            if sched is not None and sched.running:
                sched.shutdown(wait=True)  # the current tick finishes; no new one starts
            k.shutdown()
        if k.halted is not None:
            log.error(str(k.halted), extra={"event": "halt"})
            k.alerter.notify("halt", "critical", f"{k.name}: keeper halted", str(k.halted))
            k.alerter.close()
            raise k.halted
        return 0

    def poll(self) -> None:
        """The block tick job: tick the newest head, again while a newer one has arrived."""
        k = self.k
        if k.stop.is_set():
            return
        try:
            while not k.stop.is_set():
                head = self.newest_head()
                if k.last_block is not None and head <= k.last_block:
                    break
                with k.tick_lock:
                    try:
                        with k.gc.tick():
                            k.tick(head)
                    finally:
                        # collect now, the old generation only when no newer head waits for a tick
                        newer = k.heads.newest() if k.heads is not None else None
                        k.gc.after(idle=newer is None or newer <= head)
                k.last_block, k.last_block_at = head, k.clock()
                if k.heads is None or k.heads.newest() is None:
                    break  # polling: the next poll asks again; a subscription may hold a newer head already
            self.failures = 0
        except Exception as e:
            self.failures += 1
            extra = {"event": "tick_failed", "error": str(e), "failures": self.failures}
            if isinstance(e, KeeperError):
                log.error("tick failed", extra=extra)
            else:  # not a chain or input condition: a bug; its traceback goes to the log
                log.exception("tick failed: unexpected error", extra={**extra, "type": type(e).__name__})
            if isinstance(e, Halt) or self.failures >= k.cfg.daemon.max_consecutive_failures:
                self.halt(Halt(f"circuit breaker: {self.failures} failed ticks in a row; last: "
                               f"{e if isinstance(e, KeeperError) else f'{type(e).__name__}: {e}'}"))

    def newest_head(self) -> int:
        """The subscription's newest head; the node's (``eth_blockNumber``) while polling, or when the
        subscription has been silent for ``daemon.ws_stall_seconds`` and the node is ahead of it."""
        k = self.k
        heads = k.heads
        ws = heads.newest() if heads is not None else None
        if ws is None or heads is None:
            return k.client.block_number()
        silent = k.clock() - heads.head_at
        if silent > k.cfg.daemon.ws_stall_seconds:
            polled = k.client.block_number()
            if polled > ws:
                heads.stalled(f"no head from the WebSocket for {silent:.0f} s while the node is at block {polled}")
                return polled
        return ws

    def wake(self, _head: int) -> None:
        """A new head from the subscription: run the tick job now (never a second instance)."""
        sched = self.sched
        if sched is not None and not self.k.stop.is_set():
            # the scheduler may be shutting down; the interval run would come anyway
            with contextlib.suppress(Exception):
                sched.modify_job("block_tick", next_run_time=datetime.now(UTC))

    def heads_down(self, why: str) -> None:
        self.k.metrics.ws_fallback(self.k.name)
        self.k.metrics.set_head_source(self.k.name, False)

    def heartbeat(self) -> None:
        k = self.k
        log.info("heartbeat", extra={"event": "heartbeat", "block": k.last_block, "ticks": k.ticks,
                                     "actions": k.actions_sent,
                                     "heads": k.heads.source if k.heads is not None else "poll"})

    def halt(self, h: Halt) -> None:
        self.k.halt(h)
