"""Start-up reconciliation of the action journal with the chain (DESIGN.md, "The loop").

For every open journal entry, before the first tick:
- an intent that was never signed: nothing can have been sent; mark it ``abandoned`` (the planner
  decides afresh on the next tick, under a new decision epoch);
- a signed transaction: if any of its attempts has a receipt, record ``mined`` or ``reverted``;
  if its nonce was consumed by some other transaction of the key, record ``failed``; otherwise it
  may still be in a mempool or may never have left: broadcast its latest attempt again (the same
  signed bytes, same nonce: it can be mined at most once) and leave it open for ``wait_pending``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from keeper.chain.client import ChainClient
from keeper.errors import KeeperError, TxFailed
from keeper.store.journal import Entry, Journal


@dataclass
class ReconcileReport:
    mined: list[int] = field(default_factory=list)
    reverted: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    abandoned: list[int] = field(default_factory=list)
    rebroadcast: list[int] = field(default_factory=list)

    @property
    def pending(self) -> list[int]:
        return list(self.rebroadcast)


def _receipt(client: ChainClient, entry: Entry) -> dict | None:
    for a in entry.attempts:
        rc = client.request("eth_getTransactionReceipt", [a.tx_hash])
        if rc is not None:
            return rc
    return None


def _settle(journal: Journal, client: ChainClient, entry: Entry, sender: str, report: ReconcileReport) -> bool:
    """Record a final outcome if the chain has one; True when the entry is settled."""
    rc = _receipt(client, entry)
    if rc is not None:
        ok = int(rc["status"], 16) == 1
        journal.record_outcome(entry.id, "mined" if ok else "reverted", mined_hash=rc["transactionHash"],
                               mined_block=int(rc["blockNumber"], 16),
                               error=None if ok else "mined but reverted")
        (report.mined if ok else report.reverted).append(entry.id)
        return True
    mined_count = int(client.request("eth_getTransactionCount", [sender, "latest"]), 16)
    if entry.nonce is not None and mined_count > entry.nonce:
        # Check the receipts once more: one of ours may have been mined between the two reads.
        if _receipt(client, entry) is not None:
            return _settle(journal, client, entry, sender, report)
        journal.record_outcome(entry.id, "failed", error=f"nonce {entry.nonce} was used by another transaction")
        report.failed.append(entry.id)
        return True
    return False


def reconcile(journal: Journal, client: ChainClient, chain: str, sender: str) -> ReconcileReport:
    report = ReconcileReport()
    for entry in journal.open_entries(chain):
        if entry.status == "intent" or not entry.attempts:
            journal.record_outcome(entry.id, "abandoned", error="never signed before the keeper stopped")
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


def wait_pending(journal: Journal, client: ChainClient, chain: str, sender: str, *, max_blocks: int = 50,
                 poll: float = 0.2, sleep: Callable[[float], None] = time.sleep) -> ReconcileReport:
    """Wait until every open signed entry is mined, reverted or failed (or ``max_blocks`` pass)."""
    report = ReconcileReport()
    start = int(client.request("eth_blockNumber"), 16)
    while True:
        open_ = [e for e in journal.open_entries(chain) if e.status == "signed"]
        open_ = [e for e in open_ if not _settle(journal, client, e, sender, report)]
        if not open_:
            return report
        if int(client.request("eth_blockNumber"), 16) - start > max_blocks:
            report.rebroadcast = [e.id for e in open_]
            return report
        sleep(poll)
