"""The daemon's act path: every action of a tick goes out together, in the block after the head.

``keeper rebalance`` sends one action and waits for it (``manual.execute``). The daemon cannot: with
K positions to save at once, send-and-wait would land them K blocks apart, and even sending one by
one costs K times the round trips. A tick here runs in four steps:

1. ``begin()``, at the start of the tick, before the chain is read: in the background (a small I/O
   thread pool) the journal is settled (``manual.settle_journal_first``: an open or reorged-out
   transaction of ours stops new actions; the recent ones are re-verified at every tick, so a reorg
   is found even while the keeper has nothing to do), and the fee history, the key's pending nonce
   and the decisions journaled at this block already (a restart within the block) are read. (The
   daemon reads the vaults' balances and floors ahead in the same pool: ``keeper.daemon.keeper``.)
2. ``add()``, as soon as a vault's plan is made (the most endangered vault first): its vault call
   is built and queued; every ``GAS_CHUNK`` queued calls, their gas calls (one execution each on
   the pending block) go to the node as one JSON-RPC batch in the background.
3. ``flush()``, once the plans are made (or when the oldest queued action has waited
   ``FLUSH_AFTER_S``): wait for the journal check; drop decisions journaled already (idempotency
   keys); collect the gas limits (the rest in one last batch; a revert is refused, and decoded,
   before anything is signed); bid (one fee history per tick); sign on consecutive nonces;
   journal every decision with its signed transaction, or with the reason it was refused, in one
   DB transaction; broadcast the signed ones in one JSON-RPC batch. The journal-before-broadcast
   rule holds for the batch: a kill before the commit has sent nothing (the next tick plans
   afresh), and every transaction sent is in the journal. ``settle_all()`` then waits for the
   receipts in order (same-nonce fee bumps while waiting), records each outcome, and alerts on
   failures and gas-cap decisions.
4. ``finish()``: every tick joins the background journal check (its errors fail the tick).

An action refused on its own (a revert in its gas call, the fee cap, a duplicate decision) does not
stop the others and takes no nonce. Known limit: a node that refuses one broadcast of the batch for a reason of its own
leaves a nonce gap; the later transactions wait behind it until the journal's reconciliation.

The hot key is loaded once (a keystore's scrypt is slow) and the journal lives on the daemon's store.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keeper.alerts import Alerter
from keeper.app.books import VaultBook
from keeper.chain.client import ChainClient
from keeper.chain.contracts import ours
from keeper.chain.fees import GWEI, Bid
from keeper.chain.tx import Attempt, NonceManager, TxOutcome, TxRequest, TxSender
from keeper.config import Config
from keeper.domain import Action
from keeper.errors import KeeperError, TemporaryError
from keeper.faults import crash_point
from keeper.protocols.vault_calls import vault_request
from keeper.store import Store
from keeper.store.journal import AttemptRecord, Decision, DuplicateIntent, Journal

if TYPE_CHECKING:
    from keeper.app.manual import Session

log = logging.getLogger("keeper.daemon")

# A queued action waits at most this long for the vaults planned after it (step 3): batching saves
# round trips and commits, but must not hold the first transactions back behind a long plan.
FLUSH_AFTER_S = 0.25
IO_THREADS = 3  # the journal check, the fee history and the nonce while the chain is read; then gas calls
GAS_CHUNK = 4  # queued actions per batch of gas calls started while the next vaults are planned


@dataclass
class Launched:
    book: VaultBook
    action: Action
    key: str  # the decision's idempotency key
    request: TxRequest
    record: dict[str, Any]  # the intent as journaled
    urgency: float
    queued_at: float  # perf_counter
    sender: TxSender | None = None
    gas_reply: tuple[Future[list[Any]], int] | None = None  # (the batch of gas calls it is in, its index there)
    entry: int | None = None  # journal entry, once the intent is recorded
    out: TxOutcome | None = None
    error: KeeperError | None = None  # refused or failed
    sent_at: float | None = None  # perf_counter when the broadcast returned


def _attempt_record(a: Attempt) -> AttemptRecord:
    return AttemptRecord(a.nonce, a.tx_hash, "0x" + a.raw.hex(), a.bid.max_fee_per_gas, a.bid.max_priority_fee_per_gas)


# What ``Dispatcher.add`` (the sender), ``flush`` (the outcome, the journal entry) and ``TxSender.settle``
# (the receipt) set before they are used; missing, they are a bug, never a chain condition.
def sender_of(item: Launched) -> TxSender:
    if item.sender is None:
        raise RuntimeError(f"{item.key}: no transaction sender")
    return item.sender


def outcome_of(item: Launched) -> TxOutcome:
    if item.out is None:
        raise RuntimeError(f"{item.key}: not signed")
    return item.out


def entry_of(item: Launched) -> int:
    if item.entry is None:
        raise RuntimeError(f"{item.key}: not journaled")
    return item.entry


def receipt_of(out: TxOutcome) -> dict[str, Any]:
    if out.receipt is None:
        raise RuntimeError(f"nonce {out.nonce}: settled without a receipt")
    return out.receipt


class Dispatcher:
    def __init__(self, cfg: Config, chain: str, client: ChainClient, store: Store, alerter: Alerter) -> None:
        from keeper.app.manual import fee_policy, keeper_key

        self.cfg, self.chain, self.client, self.alerter = cfg, chain, client, alerter
        self.key = keeper_key(cfg, self._chain_id())
        self.journal = Journal(store)
        self.fees = fee_policy(cfg)
        self.nonces = NonceManager(client, self.key.address)
        self.abis = [ours("KeeperVault").abi]  # GMX v1 reverts with strings (Error(string))
        self.pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="keeper-io")
        for f in [self.pool.submit(time.sleep, 0.01) for _ in range(IO_THREADS)]:
            f.result()  # start the threads now, not on the first tick that acts
        self.queue: list[Launched] = []
        self._unestimated: list[Launched] = []
        self._check: Future[None] | None = None
        self._base_fees: Future[list[int]] | None = None
        self._pending: Future[int] | None = None
        self._taken: Future[set[str]] | None = None

    def _chain_id(self) -> int:
        """The chain id the client checked on connecting (the keeper connects before it dispatches)."""
        chain_id = self.client.expected_chain_id
        if chain_id is None:
            raise RuntimeError(f"chain {self.chain}: the client has not connected (no chain id)")
        return chain_id

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _sender(self, item: Launched) -> TxSender:
        journal = self.journal

        def on_signed(_out: TxOutcome, a: Attempt) -> None:  # the settle loop's fee bumps, one at a time
            journal.record_attempt(entry_of(item), _attempt_record(a))

        s = TxSender(self.client, self.key, self._chain_id(), self.fees, abis=self.abis,
                     bump_after_blocks=self.cfg.fees.bump_after_blocks, on_signed=on_signed)
        s.nonces = self.nonces  # one nonce sequence for the tick's batch
        return s

    # --- one tick ----------------------------------------------------------------------------
    def begin(self, block: int) -> None:
        """At the start of the tick for ``block``: start the journal check, the fee history, the
        nonce read and the lookup of decisions journaled at this block already (a restart within
        the block); they run while the chain is read."""
        from keeper.app.manual import settle_journal_first

        left, self._check, self.queue, self._unestimated = self._check, None, [], []
        if left is not None:  # from a tick that failed early: let it end; the new check redoes its work
            with contextlib.suppress(KeeperError):
                left.result()
        self.nonces.resync()
        self._check = self.pool.submit(settle_journal_first, self.journal, self.client, self.chain, self.key.address)
        probe = TxSender(self.client, self.key, self._chain_id(), self.fees)
        self._base_fees = self.pool.submit(probe.base_fees)
        self._pending = self.pool.submit(self.nonces.pending_count)
        self._taken = self.pool.submit(self.journal.taken_at_block, "daemon", block)

    def add(self, session: Session, book: VaultBook, action: Action) -> Launched:
        """Queue an action (its vault call) for the next :meth:`flush`."""
        from keeper.app.manual import action_urgency

        req = vault_request(book.vault, action, {p.key: p for p in book.positions})
        key = f"daemon:{action.position_key}:{session.snap.block}:{action.kind.value}:{action.amount_raw}"
        record = {"kind": action.kind.value, "asset": action.asset.address, "amount_raw": action.amount_raw,
                  "target": action.target_key, "reason": action.reason.__dict__, "vault": book.vault, "at": time.time()}
        item = Launched(book, action, key, req, record, action_urgency(session, action), time.perf_counter())
        item.sender = self._sender(item)
        self.queue.append(item)
        self._unestimated.append(item)
        if len(self._unestimated) >= GAS_CHUNK:
            self._estimate_queued()
        return item

    def due(self) -> bool:
        """True when the oldest queued action has waited ``FLUSH_AFTER_S`` for the rest."""
        return bool(self.queue) and time.perf_counter() - self.queue[0].queued_at >= FLUSH_AFTER_S

    def finish(self) -> None:
        """Join the journal check started by :meth:`begin`; its error (an open or reorged-out
        transaction of ours, a dead RPC) is raised here."""
        check, self._check = self._check, None
        if check is not None:
            check.result()

    def flush(self) -> list[Launched]:
        """Journal, sign and broadcast every queued action (step 3 above); returns them, each with
        its ``out`` (sent) or ``error`` (refused)."""
        items, self.queue = self.queue, []
        if not items:
            return []
        self.finish()
        base_fees = self._base_fees.result() if self._base_fees is not None else None
        pending = self._pending.result() if self._pending is not None else None
        self._pending = None  # the nonce count is good for one batch; later batches read it again
        known = self._taken.result() if self._taken is not None else None
        taken = self.journal.taken([it.key for it in items]) if known is None else known & {it.key for it in items}
        fresh = [it for it in items if it.key not in taken]
        for it in items:
            if it.key in taken:
                it.error = DuplicateIntent(f"decision {it.key} was journaled already; not acting again")
        ready: list[tuple[Launched, int, Bid]] = []
        refused: list[tuple[Launched, KeeperError]] = []
        self._estimate_queued()
        for it in fresh:
            try:
                sender = sender_of(it)
                gas = sender.gas_from(it.request, self._gas_reply(it))
                ready.append((it, gas, sender.first_bid(it.request, it.urgency, base_fees or sender.base_fees())))
            except KeeperError as e:
                refused.append((it, e))
        first = self.nonces.take(len(ready), pending) if ready else 0
        for k, (it, gas, b) in enumerate(ready):
            it.out = sender_of(it).signed(it.request, first + k, gas, b)
        crash_point("before_journal")
        rows = [(it, Decision(it.key, it.action.position_key, it.record, _attempt_record(outcome_of(it).attempts[0])))
                for it, _g, _b in ready]
        rows += [(it, Decision(it.key, it.action.position_key, it.record, None, str(err)[:500]))
                 for it, err in refused]
        for (it, _d), entry in zip(rows, self.journal.record_decisions(self.chain, [d for _i, d in rows])):
            it.entry = entry
        crash_point("after_journal")
        for it, err in refused:
            it.error = err
            self._alert_refusal(it, err)
        if not ready:
            return items
        try:
            replies = self.client.batch_each([("eth_sendRawTransaction", ["0x" + outcome_of(it).attempts[0].raw.hex()])
                                              for it, _g, _b in ready])
        except TemporaryError as e:  # no node took the batch: journaled, so the settle loop resends
            replies = [e] * len(ready)
        sent = time.perf_counter()
        crash_point("after_send")
        for (it, _g, _b), reply in zip(ready, replies):
            it.sent_at = sent
            if isinstance(reply, KeeperError):
                try:
                    sender_of(it).broadcast_failed(outcome_of(it), reply, it.urgency)
                except KeeperError as e:
                    it.out = None
                    self._refuse(it, e)
        return items

    def _estimate_queued(self) -> None:
        """Start the gas calls of the actions queued since the last start, as one JSON-RPC batch in
        the I/O pool (``TxSender.gas_call``: one execution each on the pending block); the node runs
        them while the next vaults are planned."""
        chunk, self._unestimated = self._unestimated, []
        if not chunk:
            return
        if "eth_createAccessList" in self.client.unsupported:
            for it in chunk:
                it.gas_reply = None
            return
        batch = self.pool.submit(self._gas_batch, [sender_of(it).gas_call(it.request) for it in chunk])
        for k, it in enumerate(chunk):
            it.gas_reply = (batch, k)

    def _gas_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        try:
            return self.client.batch_each(calls)
        except TemporaryError:  # each item then estimates on its own (TxSender.gas_from)
            return [None] * len(calls)

    @staticmethod
    def _gas_reply(item: Launched) -> Any:
        if item.gas_reply is None:
            return None
        batch, k = item.gas_reply
        return batch.result()[k]

    def _refuse(self, item: Launched, e: KeeperError) -> None:
        item.error = e
        self._failed(item, e)

    def settle_all(self, launched: Sequence[Launched]) -> None:
        for item in launched:
            if item.out is None:
                continue
            try:
                sender_of(item).settle(item.out, item.urgency)
            except KeeperError as e:
                self._refuse(item, e)
                continue
            rc = receipt_of(item.out)
            self.journal.record_outcome(entry_of(item), "mined", mined_hash=rc["transactionHash"],
                                        mined_block=int(rc["blockNumber"], 16))
            over = [a for a in item.out.attempts if a.bid.over_normal_cap]
            if over:
                self.alerter.notify("gas_spike", "warning", f"{self.chain}: sent above the normal gas cap",
                                    f"the urgency rule allowed {over[-1].bid.max_fee_per_gas / GWEI:.2f} gwei "
                                    f"(normal cap {self.cfg.fees.max_fee_gwei:g} gwei); {over[-1].bid.reason}",
                                    position=item.action.position_key, urgency=round(item.urgency, 3),
                                    tx=item.out.mined_hash)

    def _alert_refusal(self, item: Launched, e: KeeperError) -> None:
        if "gas cap hit" in str(e) or "above the fee cap" in str(e):
            self.alerter.notify("gas_spike", "critical", f"{self.chain}: gas above the cap, not sent", str(e),
                                position=item.action.position_key, urgency=round(item.urgency, 3))

    def _failed(self, item: Launched, e: KeeperError) -> None:
        """Journal what is known: never signed -> failed; mined but reverted -> reverted; signed and
        maybe broadcast with no receipt -> left open for reconciliation."""
        self._alert_refusal(item, e)
        rc = sender_of(item).last_receipt
        entry = entry_of(item)
        if not self.journal.get(entry).attempts:
            self.journal.record_outcome(entry, "failed", error=str(e)[:500])
        elif rc is not None:
            self.journal.record_outcome(entry, "reverted", mined_hash=rc["transactionHash"],
                                        mined_block=int(rc["blockNumber"], 16), error=str(e)[:500])
