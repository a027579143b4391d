"""Start-up reconciliation of the action journal with the chain (DESIGN.md, "The loop").

For every open journal entry, before the first tick:
- an intent that was never signed: nothing can have been sent; mark it ``abandoned`` (the planner
  decides afresh on the next tick, under a new decision epoch);
- a signed transaction: if any of its attempts has a receipt, record ``mined`` or ``reverted``;
  if its nonce was consumed by some other transaction of the key, record ``failed``; otherwise it
  may still be in a mempool or may never have left: broadcast its latest attempt again (the same
  signed bytes, same nonce: it can be mined at most once) and leave it open for ``wait_pending``.

Before that, ``reverify`` checks the entries settled in the last ``reorg_depth`` blocks against the
chain: one whose transaction is no longer on the canonical chain (a reorg dropped it) is reopened and
goes through the same steps, so the action lands exactly once on the final chain — never re-planned
as a second, new transaction while the first can still be re-included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account

from keeper.chain.client import ChainClient
from keeper.chain.tx import NONCE_GRACE_S, Receipt
from keeper.errors import KeeperError, TxFailed
from keeper.store.journal import Entry, Journal, Status


@dataclass
class ReconcileReport:
    mined: list[int] = field(default_factory=list)
    reverted: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    rebroadcast: list[int] = field(default_factory=list)
    reorged: list[int] = field(default_factory=list)

    @property
    def pending(self) -> list[int]:
        return list(self.rebroadcast)


def _receipt(client: ChainClient, entry: Entry) -> Receipt | None:
    for a in entry.attempts:
        rc: dict[str, Any] | None = client.request("eth_getTransactionReceipt", [a.tx_hash])
        if rc is not None:
            return Receipt.from_rpc(rc)
    return None


def signer_of(entry: Entry) -> str | None:
    """The address that signed the entry's journaled transaction (its latest attempt), or None."""
    if not entry.attempts:
        return None
    try:
        return str(Account.recover_transaction(entry.attempts[-1].raw))
    except Exception:  # bytes that do not decode: re-sending them fails with a clear TxFailed instead
        return None


def _settle(journal: Journal, client: ChainClient, entry: Entry, sender: str | None,
            report: ReconcileReport) -> bool:
    """Record a final outcome if the chain has one; True when the entry is settled. ``sender``:
    the keeper's address; None (no key loaded): the signer of the entry's own signed bytes."""
    rc = _receipt(client, entry)
    if rc is not None:
        ok = rc.ok
        journal.record_outcome(entry.id, Status.MINED if ok else Status.REVERTED, mined_hash=rc.tx_hash,
                               mined_block=rc.block, error=None if ok else "mined but reverted")
        (report.mined if ok else report.reverted).append(entry.id)
        return True
    if sender is None:
        sender = signer_of(entry)
        if sender is None:
            return False
    mined_count = int(client.request("eth_getTransactionCount", [sender, "latest"]), 16)
    if entry.nonce is not None and mined_count > entry.nonce:
        # Check the receipts again for a while: one of ours may have been mined between the two
        # reads, and a node can show the new nonce a moment before that block's receipts.
        deadline = time.monotonic() + NONCE_GRACE_S
        while True:
            if _receipt(client, entry) is not None:
                return _settle(journal, client, entry, sender, report)
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        journal.record_outcome(entry.id, Status.FAILED, error=f"nonce {entry.nonce} was used by another transaction")
        report.failed.append(entry.id)
        return True
    return False


def reverify(journal: Journal, client: ChainClient, chain: str, *, depth: int = 64) -> list[int]:
    """Reopen every entry settled within ``depth`` blocks of the head whose receipt is gone."""
    head = int(client.request("eth_blockNumber"), 16)
    reopened = []
    entries = [e for e in journal.settled_since(chain, max(head - depth, 0)) if e.mined_hash is not None]
    receipts: list[dict[str, Any] | None] = []
    for i in range(0, len(entries), 100):  # the daemon re-verifies at every tick: one request per 100
        receipts += client.batch([("eth_getTransactionReceipt", [e.mined_hash]) for e in entries[i:i + 100]])
    for entry, rc in zip(entries, receipts):
        if rc is None:
            journal.reopen(entry.id, f"reorged out: {entry.mined_hash} was in block {entry.mined_block}, "
                                     f"no longer on the chain")
            reopened.append(entry.id)
        elif int(rc["blockNumber"], 16) != entry.mined_block:  # re-included elsewhere by the reorg
            journal.record_outcome(entry.id, entry.status, mined_hash=entry.mined_hash,
                                   mined_block=int(rc["blockNumber"], 16), error=entry.error)
    return reopened


def reconcile(journal: Journal, client: ChainClient, chain: str, sender: str | None, *,
              reorg_depth: int = 64) -> ReconcileReport:
    """``sender``: the keeper's address; None when no key is loaded: each entry's nonce is then
    checked against the signer of its own journaled bytes (re-sending them needs no key)."""
    report = ReconcileReport()
    report.reorged = reverify(journal, client, chain, depth=reorg_depth)
    for entry in journal.open_entries(chain):
        if entry.status is Status.INTENT or not entry.attempts:
            journal.record_outcome(entry.id, Status.ABANDONED, error="never signed before the keeper stopped")
            report.abandoned.append(entry.id)
            continue
        if _settle(journal, client, entry, sender, report):
            continue
        latest = entry.attempts[-1]
        try:
            client.request("eth_sendRawTransaction", [latest.raw])
        except KeeperError as e:
            msg = str(e).lower()
            if not ("already known" in msg or "already imported" in msg or "nonce too low" in msg):
                raise TxFailed(f"journal entry {entry.id}: resending {latest.tx_hash} failed: {e}") from e
        report.rebroadcast.append(entry.id)
    return report


def wait_pending(journal: Journal, client: ChainClient, chain: str, sender: str | None, *, max_blocks: int = 50,
                 poll: float = 0.2, sleep: Callable[[float], None] = time.sleep) -> ReconcileReport:
    """Wait until every open signed entry is mined, reverted or failed (or ``max_blocks`` pass)."""
    report = ReconcileReport()
    start = int(client.request("eth_blockNumber"), 16)
    while True:
        open_ = [e for e in journal.open_entries(chain) if e.status is Status.SIGNED]
        open_ = [e for e in open_ if not _settle(journal, client, e, sender, report)]
        if not open_:
            return report
        if int(client.request("eth_blockNumber"), 16) - start > max_blocks:
            report.rebroadcast = [e.id for e in open_]
            return report
        sleep(poll)


def settled_after(journal: Journal, report: ReconcileReport, block: int) -> list[Entry]:
    """The entries this reconciliation found mined (or reverted) in a block after ``block``: a
    chain read at ``block`` does not show them, so a plan made on it could repeat their action."""
    out = []
    for entry_id in report.mined + report.reverted:
        entry = journal.get(entry_id)
        if entry.mined_block is not None and entry.mined_block > block:
            out.append(entry)
    return out
