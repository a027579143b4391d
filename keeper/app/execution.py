"""The one execution pipeline: every keeper transaction, from ``keeper rebalance --execute`` (one
action) and from the daemon (every action of a block), goes through :class:`Pipeline`.

An action becomes an :class:`Intent` (its idempotency key and what is journaled), then an
:class:`Item` whose :class:`Stage` moves from ``QUEUED`` to ``REFUSED`` (nothing broadcast) or
``SENT``, and then to ``MINED``, ``REVERTED`` or ``UNSETTLED`` (signed, maybe broadcast, no receipt
within the wait: open in the journal, for reconciliation). Failures are typed (``GasCapHit``,
``NonceUsed``, ``MinedReverted``, ``Reverted``, ``DuplicateIntent``); a receipt is a ``Receipt``.

A run of the pipeline (one tick of the daemon, or one operator command):

1. ``begin(block)``, before the chain is read: in the background (the I/O pool) the journal is
   settled (:func:`settle_journal_first`: an open or reorged-out transaction of ours stops new
   actions; the recent ones are re-verified each time, so a reorg is found even while the keeper
   has nothing to do), the key's mined nonces are checked against the journal (a second sender
   on the key halts: :mod:`keeper.app.key_guard`), and the fee history, the key's pending nonce
   and the decisions journaled at this block already (a restart within the block) are read.
2. ``add()``, as soon as a vault's plan is made (the most endangered vault first): its vault call
   is built and queued. ``step()``, between two vaults: once a chunk's calls are queued
   (:func:`chunk_target`: 8 first, then as many as vaults are left to plan, at most 32; a vault's
   calls are never split), they are simulated, in order in a new block on top of the
   latest one, by one ``eth_simulateV1`` (nodes without it: one ``eth_createAccessList`` per call
   on the pending block, in one JSON-RPC batch in the I/O pool) while the next vaults are planned;
   and the queued actions whose simulation is back are sent (step 3). Simulations and broadcasts
   are sent split-phase from the planning thread itself (``ChainClient.start``: the request now,
   its reply read between two vaults once the socket has it), not from worker threads, which
   waited for the interpreter lock behind the planning.
3. ``flush()``, once the plans are made, and from ``step()`` for the actions whose simulation is
   back (``flush(ready_only=True)``): wait for the journal check; drop
   decisions journaled already; collect the gas limits (a revert is refused, and decoded, before
   anything is signed); bid (one fee history); sign on consecutive nonces; journal every decision
   with its signed transaction, or with the reason it was refused, in one DB transaction; broadcast
   the signed ones in one JSON-RPC batch (one batch in flight at a time, so nonces reach the node
   in order). Journal before broadcast holds for each batch: a kill
   before its commit has sent nothing of it, and every transaction sent is in the journal. So the
   first vaults' transactions are on their way while the last ones are still being planned.
4. ``settle_all()`` waits for the receipts in order (same-nonce fee bumps while waiting), records
   each outcome, and alerts on refusals at the fee cap and on bids the urgency rule let exceed it;
   ``finish()`` joins the background journal check (its errors fail the run).

An action refused on its own does not stop the others and takes no nonce. Known limit: a node that
refuses one broadcast of a batch for a reason of its own leaves a nonce gap; the later transactions
wait behind it until the journal's reconciliation.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from keeper.alerts import Alerter
from keeper.app.books import VaultBook
from keeper.app.items import GasReplies, Intent, Item, Stage, attempt_record
from keeper.app.key_guard import KeyGuard
from keeper.app.perp_requests import requests_in, wait_settled
from keeper.chain.client import ChainClient, InFlight
from keeper.chain.contracts import ours
from keeper.chain.fees import GWEI, Bid, urgency
from keeper.chain.keys import HotKey
from keeper.chain.tx import (
    Attempt,
    NonceManager,
    TxOutcome,
    TxRequest,
    TxSender,
    base_fees,
    simulate_params,
    simulated,
)
from keeper.config import Config
from keeper.domain import Action, ActionKind, Address, Position
from keeper.errors import GasCapHit, KeeperError, MinedReverted, TemporaryError
from keeper.faults import crash_point
from keeper.protocols.vault_calls import vault_request
from keeper.store import Store
from keeper.store.journal import Decision, DuplicateIntent, Journal, Status

if TYPE_CHECKING:
    from keeper.app.manual import Session

log = logging.getLogger("keeper.execution")

# A queued action waits at most this long for the vaults planned after it (step 3), even if its
# simulation is not back: then the flush waits for it.
FLUSH_AFTER_S = 0.25
IO_THREADS = 3  # the journal check, the fee history and the nonce while the chain is read
# Queued actions per simulation started while the next vaults are planned: the first one small, so
# the most endangered vaults' actions go out first; then as many as there are vaults still to plan,
# at most MAX_CHUNK. Every chunk costs the planning thread its own simulation, journal commit and
# broadcast (K = 100, bench/reaction.py: the tick thread's CPU 71 ms with chunks of 8, 51 with 32),
# and the last chunk's simulation is waited for at the end: small chunks at both ends, large ones
# in between.
GAS_CHUNK = 8
MAX_CHUNK = 32


def chunk_target(started: int, remaining: int | None) -> int:
    """The queued actions that start the next simulation, ``started`` simulations into the run,
    with ``remaining`` vaults still to plan (None: not known)."""
    if started == 0 or remaining is None:
        return GAS_CHUNK
    return max(GAS_CHUNK, min(MAX_CHUNK, remaining))


class _Simulation:
    """One chunk's ``eth_simulateV1``, sent from the planning thread (``ChainClient.start``) and
    read once its reply is there; a node that refuses the method gets the chunk's calls as access
    lists instead (``Pipeline._access_lists``), a dead one ``None`` per call (each then estimates on its
    own), as before."""

    def __init__(self, pipeline: Pipeline, senders: list[TxSender], reqs: list[TxRequest]) -> None:
        self.pipeline, self.senders, self.reqs = pipeline, senders, reqs
        self.flight: InFlight = pipeline.client.start("eth_simulateV1",
                                                      simulate_params([s.call_obj(r) for s, r in zip(senders, reqs)]))
        self._replies: list[Any] | None = None

    def done(self) -> bool:
        return self._replies is not None or self.flight.ready()

    def result(self) -> list[Any]:
        if self._replies is None:
            try:
                self._replies = simulated(self.flight.result(), len(self.reqs))
            except TemporaryError:
                self._replies = [None] * len(self.reqs)
            except KeeperError as e:
                log.warning("eth_simulateV1 refused (%s): simulating each call with eth_createAccessList", e)
                self.pipeline.client.unsupported.add("eth_simulateV1")
                self._replies = self.pipeline._access_lists(self.senders, self.reqs)
        return self._replies


@dataclass
class _Broadcast:
    """One batch of signed first attempts, broadcast split-phase in nonce order: ``flight`` once
    its request is out (one batch at a time), ``started`` its perf_counter."""

    items: list[Item]
    flight: InFlight | None = None
    started: float = 0.0


def action_urgency(session: Session, action: Action) -> float:
    if action.kind is ActionKind.WITHDRAW_EXCESS:
        return 0.0
    eps = session.policy.epsilon if session.policy is not None else action.reason.epsilon
    return urgency(max(action.reason.p_before, 0.0), eps)


def settle_journal_first(journal: Journal, client: ChainClient, chain: str, sender: str,
                         block: int | None = None) -> None:
    """Before a new decision: nothing of ours may be open or reorged out. A reorg that dropped an
    earlier action re-sends that action (same signed bytes, same nonce) instead of planning a new
    one on a chain that does not show it: the caller re-plans on the next block. So does an open
    entry found mined after ``block``, the block the caller plans on (its read does not show it)."""
    from keeper.app.reconcile import reconcile, settled_after, wait_pending

    report = reconcile(journal, client, chain, sender)
    late = settled_after(journal, report, block) if block is not None else []
    if late:
        raise TemporaryError(f"journal entr{'y' if len(late) == 1 else 'ies'} {', '.join(str(e.id) for e in late)} "
                             f"settled now, mined after block {block}, which this plan reads: no new action on "
                             f"it, re-planning on the next block")
    if not (report.rebroadcast or report.reorged):
        return
    settled = wait_pending(journal, client, chain, sender)
    what = (f"a reorg dropped journal entr{'y' if len(report.reorged) == 1 else 'ies'} "
            f"{', '.join(map(str, report.reorged))}; re-sent (same signed bytes)" if report.reorged else
            f"journal entries {', '.join(map(str, report.rebroadcast))} were still open; re-sent")
    state = "mined" if settled.mined and not settled.rebroadcast else "still pending"
    raise TemporaryError(f"{what}, now {state}: no new action on this plan, re-planning on the next block")


class Pipeline:
    """Journal, sign, broadcast and settle the keeper's transactions (see the module docstring).
    ``pool``: the I/O threads to use (the daemon shares its own); without one the pipeline starts
    and owns ``io_threads`` of them."""

    def __init__(self, cfg: Config, chain: str, client: ChainClient, store: Store, alerter: Alerter, *,
                 key: HotKey, origin: str = "daemon", pool: ThreadPoolExecutor | None = None,
                 io_threads: int = IO_THREADS) -> None:
        from keeper.app.manual import fee_policy

        self.cfg, self.chain, self.client, self.alerter = cfg, chain, client, alerter
        self.key, self.origin = key, origin
        self.journal = Journal(store)
        self.journal.sender = key.address
        self.guard = KeyGuard(self.journal, client, chain, key.address)
        self.fees = fee_policy(cfg)
        self.nonces = NonceManager(client, key.address)
        self.abis = [ours("KeeperVault").abi]  # GMX v1 reverts with strings (Error(string))
        self._own_pool = pool is None
        self.pool = pool or ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="keeper-io")
        if self._own_pool:
            for f in [self.pool.submit(time.sleep, 0.01) for _ in range(io_threads)]:
                f.result()  # start the threads now, not when the first action waits for them
        self.queue: list[Item] = []
        self._unestimated: list[Item] = []
        # the signed batches waiting for their broadcast, in nonce order; the first may be in flight
        self._sends: list[_Broadcast] = []
        self._timing_lock = threading.Lock()
        self._check: Future[None] | None = None
        self._base_fees: Future[list[int]] | None = None
        self._pending: Future[int] | None = None
        self._nonce_read = False  # this run has taken nonces from the node's count already
        self._simulations = 0  # simulations started this run
        self._taken: Future[set[str]] | None = None
        self.timings: dict[str, float] = {}

    def _chain_id(self) -> int:
        """The chain id the client checked on connecting (a session connects before it executes)."""
        chain_id = self.client.expected_chain_id
        if chain_id is None:
            raise RuntimeError(f"chain {self.chain}: the client has not connected (no chain id)")
        return chain_id

    def close(self) -> None:
        with contextlib.suppress(KeeperError):
            self._collect()
        if self._own_pool:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _sender(self) -> TxSender:
        s = TxSender(self.client, self.key, self._chain_id(), self.fees, abis=self.abis,
                     bump_after_blocks=self.cfg.fees.bump_after_blocks)
        s.nonces = self.nonces  # one nonce sequence for the run's batch
        return s

    # --- one run -----------------------------------------------------------------------------
    def begin(self, block: int) -> None:
        """Start the journal check, the fee history, the nonce read and the lookup of decisions
        journaled at ``block`` already; they run while the chain is read."""
        left, self._check, self.queue, self._unestimated = self._check, None, [], []
        # seconds this run spent waiting for the gas calls and the journal check, signing, journaling
        # and broadcasting (all flushes together)
        self.timings = dict.fromkeys(("gas_wait_s", "sign_s", "journal_s", "journal_lock_s", "journal_commit_s",
                                      "broadcast_s"), 0.0)
        if left is not None:  # from a run that failed early: let it end; the new check redoes its work
            with contextlib.suppress(KeeperError):
                left.result()
        with contextlib.suppress(KeeperError):  # broadcasts of a run that failed after sending some
            self._collect()
        self.nonces.resync()
        self._nonce_read = False
        self._simulations = 0
        self._check = self.pool.submit(self._check_journal, block)
        self._base_fees = self.pool.submit(base_fees, self.client)
        self._pending = self.pool.submit(self.nonces.pending_count)
        self._taken = self.pool.submit(self.journal.taken_at_block, self.origin, block)

    def _check_journal(self, block: int) -> None:
        """Nothing of ours open, reorged out or settled after ``block`` (the run's read), and no
        nonce of the key mined that the journal never signed (:mod:`keeper.app.key_guard`)."""
        settle_journal_first(self.journal, self.client, self.chain, self.key.address, block)
        self.guard.check()

    def add(self, session: Session, book: VaultBook, action: Action) -> Item:
        """Queue an action (its vault call) for the next :meth:`step` or :meth:`flush`."""
        req = vault_request(book.vault, action, {p.key: p for p in book.positions})
        item = Item(book, action, Intent.of(self.origin, session.snap.block, book.vault, action), req,
                    self._sender(), action_urgency(session, action), time.perf_counter())
        item.sender.on_signed = self._journal_bumps(item)
        self.queue.append(item)
        self._unestimated.append(item)
        return item

    def _journal_bumps(self, item: Item) -> Callable[[TxOutcome, Attempt], None]:
        """The sender's hook for the settle loop's fee bumps: each signed attempt is journaled
        before it is broadcast."""
        journal = self.journal

        def on_signed(_out: TxOutcome, a: Attempt) -> None:
            journal.record_attempt(item.journaled(), attempt_record(a))

        return on_signed

    def step(self, remaining: int | None = None) -> None:
        """Between two vaults (all of one vault's actions added; ``remaining`` vaults still to plan):
        start the simulation of the queued calls once there are :func:`chunk_target` of them, and
        send the queued actions whose simulation is back (all of them once the oldest has waited
        ``FLUSH_AFTER_S``)."""
        if len(self._unestimated) >= chunk_target(self._simulations, remaining):
            self._estimate_queued()
        self._pump()
        if not self.queue:
            return
        first = self.queue[0]
        if ((first.gas_reply is not None and first.gas_reply[0].done())
                or time.perf_counter() - first.queued_at >= FLUSH_AFTER_S):
            self.flush(ready_only=True)

    def finish(self) -> None:
        """Join the journal check started by :meth:`begin`; its error (an open or reorged-out
        transaction of ours, a dead RPC) is raised here."""
        check, self._check = self._check, None
        if check is not None:
            check.result()

    def flush(self, *, ready_only: bool = False) -> list[Item]:
        """Journal, sign and broadcast the queued actions (step 3): all of them, or with
        ``ready_only`` those whose simulation is back (from the oldest, in order; all of them if the
        oldest has waited ``FLUSH_AFTER_S``). Returns them, each ``SENT`` (with ``out``) or
        ``REFUSED`` (with ``error``)."""
        cut = len(self.queue)
        if ready_only and self.queue and time.perf_counter() - self.queue[0].queued_at < FLUSH_AFTER_S:
            cut = next((k for k, it in enumerate(self.queue)
                        if it.gas_reply is None or not it.gas_reply[0].done()), cut)
        items, self.queue = self.queue[:cut], self.queue[cut:]
        if not items:
            return []
        t0 = time.perf_counter()
        self.finish()
        fees_now = self._base_fees.result() if self._base_fees is not None else None
        pending = self._pending.result() if self._pending is not None else None
        self._pending = None  # the node's count, read once per run: later batches follow on
        if pending is None and self._nonce_read:
            pending = 0  # NonceManager.take continues from the nonces this run took
        known = self._taken.result() if self._taken is not None else None
        taken = self.journal.taken([it.key for it in items]) if known is None else known & {it.key for it in items}
        for it in items:
            if it.key in taken:
                it.stage, it.error = Stage.REFUSED, DuplicateIntent(f"decision {it.key} was journaled already; "
                                                                    f"not acting again")
        ready: list[tuple[Item, int, Bid]] = []
        refused: list[tuple[Item, KeeperError]] = []
        if any(it.gas_reply is None for it in items):
            self._estimate_queued()
        for it in items:
            if it.key in taken:
                continue
            try:
                gas = it.sender.gas_from(it.request, self._gas_reply(it))
                ready.append((it, gas, it.sender.first_bid(it.request, it.urgency, fees_now or it.sender.base_fees())))
            except KeeperError as e:
                refused.append((it, e))
        t1 = time.perf_counter()
        first = 0
        if ready:  # (a flush that sends nothing takes no nonce: the next one reads the node's count)
            first = self.nonces.take(len(ready), pending)
            self._nonce_read = True
        for k, (it, gas, b) in enumerate(ready):
            it.out = it.sender.signed(it.request, first + k, gas, b)
        t2 = time.perf_counter()
        crash_point("before_journal")
        rows = [(it, Decision(it.key, it.action.position_key, it.intent.record(),
                              attempt_record(it.signed().attempts[0]))) for it, _g, _b in ready]
        rows += [(it, Decision(it.key, it.action.position_key, it.intent.record(), None, str(err)[:500]))
                 for it, err in refused]
        for (it, _d), entry in zip(rows, self.journal.record_decisions(self.chain, [d for _i, d in rows])):
            it.entry = entry
        crash_point("after_journal")
        t3 = time.perf_counter()
        split = self.journal.last_batch_timing
        self._add_timings(gas_wait_s=t1 - t0, sign_s=t2 - t1, journal_s=t3 - t2,
                          journal_lock_s=split.get("lock_s", 0.0), journal_commit_s=split.get("commit_s", 0.0))
        for it, err in refused:
            it.stage, it.error = Stage.REFUSED, err
            self._alert_refusal(it, err)
        if not ready:
            if not ready_only:
                self._collect()
            return items
        # The broadcast goes out split-phase (one batch at a time, in nonce order) while this thread
        # plans on; the whole-run flush waits for every batch of the run.
        self._sends.append(_Broadcast([it for it, _g, _b in ready]))
        if ready_only:
            self._pump()
        else:
            self._collect()
        return items

    def _pump(self) -> None:
        """Without waiting: take the reply of the batch in flight if it is there, and send the next
        batch once none is in flight (a later nonce never overtakes an earlier one)."""
        while self._sends:
            head = self._sends[0]
            if head.flight is None:
                self._start(head)
                return
            if not head.flight.ready():
                return
            self._take(self._sends.pop(0))

    def _start(self, b: _Broadcast) -> None:
        b.started = time.perf_counter()
        b.flight = self.client.start_batch([("eth_sendRawTransaction", ["0x" + it.signed().attempts[0].raw.hex()])
                                            for it in b.items])

    def _collect(self) -> None:
        """Wait for the broadcasts (in order) and take their replies."""
        while self._sends:
            b = self._sends.pop(0)
            if b.flight is None:
                self._start(b)
            self._take(b)

    def _take(self, b: _Broadcast) -> None:
        """A broadcast's replies: each item ``SENT``; a node's refusal goes to the sender (a nonce
        taken already, a fee too low...); no node took the batch: journaled, so the settle loop
        resends."""
        assert b.flight is not None
        try:
            replies = b.flight.result()
        except TemporaryError as e:
            replies = [e] * len(b.items)
        sent = time.perf_counter()
        self._add_timings(broadcast_s=sent - b.started)
        crash_point("after_send")
        for it, reply in zip(b.items, replies):
            it.sent_at, it.stage = sent, Stage.SENT
            if isinstance(reply, KeeperError):
                try:
                    it.sender.broadcast_failed(it.signed(), reply, it.urgency)
                except KeeperError as e:
                    it.out = None
                    self._failed(it, e)

    def _add_timings(self, **seconds: float) -> None:
        with self._timing_lock:  # (the I/O pool's access-list fallback runs beside this thread)
            for k, v in seconds.items():
                self.timings[k] = self.timings.get(k, 0.0) + v

    def _estimate_queued(self) -> None:
        """Start the simulation of the actions queued since the last start: one ``eth_simulateV1``
        sent from this thread (:class:`_Simulation`), or, on a node without it, one batch of access
        lists in the I/O pool; the node runs it while the next vaults are planned."""
        chunk, self._unestimated = self._unestimated, []
        if not chunk:
            return
        self._simulations += 1
        if "eth_createAccessList" in self.client.unsupported and "eth_simulateV1" in self.client.unsupported:
            for it in chunk:
                it.gas_reply = None
            return
        senders, reqs = [it.sender for it in chunk], [it.request for it in chunk]
        batch: GasReplies = (_Simulation(self, senders, reqs) if "eth_simulateV1" not in self.client.unsupported
                             else self.pool.submit(self._access_lists, senders, reqs))
        for k, it in enumerate(chunk):
            it.gas_reply = (batch, k)

    def _access_lists(self, senders: list[TxSender], reqs: list[TxRequest]) -> list[Any]:
        """Each request's reply for ``TxSender.gas_from`` on a node without ``eth_simulateV1`` (or
        refusing it; :class:`_Simulation` sends that one): one ``eth_createAccessList`` each in one
        batch; a dead node, or one without that either: ``None`` each (each then estimates alone)."""
        if "eth_createAccessList" in self.client.unsupported:
            return [None] * len(reqs)
        try:
            return self.client.batch_each([s.gas_call(r) for s, r in zip(senders, reqs)])
        except TemporaryError:
            return [None] * len(reqs)

    @staticmethod
    def _gas_reply(item: Item) -> Any:
        if item.gas_reply is None:
            return None
        batch, k = item.gas_reply
        return batch.result()[k]

    def settle_all(self, items: Sequence[Item]) -> None:
        """Wait for every sent item's receipt (in order) and journal its outcome: the mined ones in
        one commit at the end (a kill before it leaves them open, and the journal's reconciliation
        finds their receipts), a failure at once."""
        self._collect()
        mined: list[tuple[int, str, int]] = []
        try:
            for item in items:
                if item.out is None:
                    continue
                try:
                    item.sender.settle(item.out, item.urgency)
                except KeeperError as e:
                    self._failed(item, e)
                    continue
                rc = item.receipt()
                item.stage = Stage.MINED
                mined.append((item.journaled(), rc.tx_hash, rc.block))
                self._alert_over_cap(item)
        finally:
            self.journal.record_mined(mined)

    def _alert_over_cap(self, item: Item) -> None:
        """A mined transaction whose bid the urgency rule let exceed the normal gas cap."""
        if item.out is not None:
            over = [a for a in item.out.attempts if a.bid.over_normal_cap]
            if over:
                self.alerter.notify("gas_spike", "warning", f"{self.chain}: sent above the normal gas cap",
                                    f"the urgency rule allowed {over[-1].bid.max_fee_per_gas / GWEI:.2f} gwei "
                                    f"(normal cap {self.cfg.fees.max_fee_gwei:g} gwei); {over[-1].bid.reason}",
                                    position=item.action.position_key, urgency=round(item.urgency, 3),
                                    tx=item.out.mined_hash)

    def _alert_refusal(self, item: Item, e: KeeperError) -> None:
        if isinstance(e, GasCapHit):
            self.alerter.notify("gas_spike", "critical", f"{self.chain}: gas above the cap, not sent", str(e),
                                position=item.action.position_key, urgency=round(item.urgency, 3))

    def _failed(self, item: Item, e: KeeperError) -> None:
        """Journal what is known: never signed -> failed; mined but reverted -> reverted; signed and
        maybe broadcast with no receipt -> left open for reconciliation."""
        item.error = e
        self._alert_refusal(item, e)
        entry = item.journaled()
        if isinstance(e, MinedReverted):
            item.stage = Stage.REVERTED
            self.journal.record_outcome(entry, Status.REVERTED, mined_hash=e.tx_hash, mined_block=e.block,
                                        error=str(e)[:500])
        elif not self.journal.get(entry).attempts:
            item.stage = Stage.REFUSED
            self.journal.record_outcome(entry, Status.FAILED, error=str(e)[:500])
        else:
            item.stage = Stage.UNSETTLED


class Executed(NamedTuple):
    """What :func:`execute` did: the mined item, the position re-read after it, and the GMX
    PositionRouter requests it made: (request key, PositionRouter, settled within the wait)."""

    item: Item
    fresh: Position | None
    requests: list[tuple[str, Address, bool]]


def execute(cfg: Config, session: Session, book: VaultBook, action: Action) -> Executed:
    """One operator action through the pipeline: journal, send through the vault, wait, record the
    outcome, re-read the position; the item's error is raised (nothing else is sent). A gated GMX v1
    top-up or size reduction is a PositionRouter request: it is followed until GMX executes or cancels it
    (``requests``), bounded by the perp request timeout."""
    from keeper.alerts import alerter_from_config
    from keeper.app.manual import chain_id_of, keeper_key

    hot = keeper_key(cfg, chain_id_of(session))  # once: a keystore's scrypt is slow
    store = Store.open(cfg.store.url)
    alerter = alerter_from_config(cfg.alerts)
    pipe = Pipeline(cfg, session.chain, session.client, store, alerter, key=hot, origin="manual", io_threads=2)
    try:
        pipe.begin(session.snap.block)
        item = pipe.add(session, book, action)
        pipe.flush()
        pipe.settle_all([item])
        if item.error is not None:
            raise item.error
        receipt = item.receipt()
    finally:
        pipe.close()
        alerter.close()
        store.close()
    followed = []
    perp = cfg.chains[session.chain].perp if session.chain in cfg.chains else None
    wait_s = max(30.0, 3.0 * (perp.request_timeout_blocks if perp else 20))
    for key, router, decrease in requests_in(receipt, book.vault):
        # Gated GMX v1: the margin (or a size reduction) is a PositionRouter request; its position
        # keepers execute it a block or more later. Wait for it (bounded) so the position read below
        # shows the result.
        followed.append((key, router, wait_settled(session.client, router, key, wait_s, decrease=decrease)))
    after = session.reader.read()
    fresh = next((p for p in after.positions if p.key == action.position_key), None)
    return Executed(item, fresh, followed)
