"""The vaults' books between blocks: a vault's balances, release windows, floors and settings are read
again only when the chain says they may have changed.

What :func:`keeper.app.books.book_layout` lays out for a vault (its balance of every asset, what its
release window allows, the health floor of each of its markets, its deleverage settings) changes only
through
- a token moving in or out of the vault: an ERC-20 ``Transfer`` from or to it (WETH's ``Deposit`` and
  ``Withdrawal`` too), read from the assets' logs with the vault as an indexed topic;
- the vault's own doing: every owner setting and every keeper action emits an event of the vault;
- time, for the release window only: records leave it as they age, so what it still allows only
  grows between two events, and a book read earlier allows less than the chain would, never more.

So at each block the cache asks the node for the logs since the block it last read (one JSON-RPC
batch: those logs and the two block headers that pin the range) and reads again, in one multicall, only
the calls of the vaults those logs name, the calls it does not hold yet, and the vaults due for their
periodic full read (every ``REFRESH_BLOCKS``, spread over the vaults: it bounds how long a release
window or a token that changes balances without a ``Transfer``, e.g. a rebasing one, stays behind).
Everything else is answered from what it read before, unchanged since by construction.

It reads every call again (fails safe to the plain read) when it holds nothing, when the new block is
not after the last one or more than ``MAX_GAP`` blocks after it, when the last block's hash changed (a
reorg), when the logs cannot be read (an error, a node without ``eth_getLogs``), and, through
:meth:`BookCache.confirm`, when the block the logs were read up to is not the one the tick's
snapshot read. :meth:`BookCache.forget` drops a vault (the daemon calls it for a vault whose action
was refused or reverted, so the next tick reads it fresh).

Not covered, as with any read by block number: a chain that reorganises twice between two reads
(and back to the same hash at the last block read) could hide a changed vault until its periodic
read."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils.crypto import keccak

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Call, Multicall, Result
from keeper.domain import Address
from keeper.errors import KeeperError

if TYPE_CHECKING:
    from keeper.app.books import BookLayout

log = logging.getLogger("keeper.books")

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
DEPOSIT = "0x" + keccak(text="Deposit(address,uint256)").hex()  # WETH9: dst indexed
WITHDRAWAL = "0x" + keccak(text="Withdrawal(address,uint256)").hex()  # WETH9: src indexed
REFRESH_BLOCKS = 100  # every vault's book is read in full at least this often (spread over the vaults)
MAX_GAP = 256  # more blocks than this since the last read: read everything (cheaper than the logs' span)
TOPIC_CHUNK = 200  # vaults per topic list in one eth_getLogs filter (providers cap filter sizes)


def _topic(addr: Address) -> str:
    return "0x" + "0" * 24 + addr[2:]


@dataclass
class ReadStats:
    """What the last :meth:`BookCache.read` did: ``full`` (everything read, and why), or the vaults
    its logs named, the vaults due for their periodic read, and the calls it read of ``calls``."""

    full: str | None = None
    changed: int = 0
    refreshed: int = 0
    read: int = 0
    calls: int = 0


class BookCache:
    """Results of the book calls per vault, valid at block :attr:`at` (hash :attr:`hash`)."""

    def __init__(self, client: ChainClient, mc: Multicall, *, refresh_blocks: int = REFRESH_BLOCKS,
                 max_gap: int = MAX_GAP) -> None:
        self.client, self.mc = client, mc
        self.refresh_blocks, self.max_gap = refresh_blocks, max_gap
        self.at: int | None = None
        self.hash: str | None = None
        self._seen_hash: str | None = None  # the hash of the new block the logs' batch saw (None: a full read)
        self._results: dict[Address, dict[Call, Result]] = {}
        self._read_at: dict[Address, int] = {}  # vault -> the block of its last full read (staggered)
        self.stats = ReadStats()
        self._lock = threading.Lock()  # a read ahead of a failed tick may still run when the next starts

    def reset(self) -> None:
        """Hold nothing: the next read reads every call."""
        with self._lock:
            self._reset()

    def _reset(self) -> None:
        self.at = self.hash = self._seen_hash = None
        self._results.clear()
        self._read_at.clear()

    def forget(self, vault: Address) -> None:
        """Read this vault again in full at the next block."""
        with self._lock:
            self._forget(vault)

    def _forget(self, vault: Address) -> None:
        self._results.pop(vault, None)
        self._read_at.pop(vault, None)

    def read(self, layout: BookLayout, block: int) -> list[Result]:
        """The results of ``layout.calls`` at ``block``, as one multicall of them all would give."""
        with self._lock:
            return self._read(layout, block)

    def _read(self, layout: BookLayout, block: int) -> list[Result]:
        vaults = set(layout.vaults)
        for gone in [v for v in self._results if v not in vaults]:
            self._forget(gone)
        stats = ReadStats(calls=len(layout.calls))
        changed, why = self._changed(layout, block)
        if changed is None:
            stats.full = why
            self._results.clear()
        else:
            stats.changed = len(changed)
            for v in changed:
                self._results.pop(v, None)
            due = [v for v in vaults if v in self._read_at and block - self._read_at[v] >= self.refresh_blocks]
            stats.refreshed = len(due)
            for v in due:
                self._results.pop(v, None)
        fresh = [v for v in layout.vaults if v not in self._results]
        for v in fresh:
            self._results[v] = {}
            if v not in self._read_at:  # first seen: the periodic reads are spread over REFRESH_BLOCKS
                self._read_at[v] = block - int(v[2:10], 16) % self.refresh_blocks
            elif changed is not None:
                self._read_at[v] = block
        missing = [(c, v) for c, v in zip(layout.calls, layout.owners) if c not in self._results[v]]
        if missing:
            for (c, v), r in zip(missing, self.mc.call([c for c, _v in missing], block)):
                self._results[v][c] = r
        stats.read = len(missing)
        self.stats = stats
        self.at, self.hash = block, self._seen_hash
        return [self._results[v][c] for c, v in zip(layout.calls, layout.owners)]

    def confirm(self, block: int, block_hash: str | None) -> bool:
        """The tick's snapshot read ``block`` with hash ``block_hash``. False (and everything dropped)
        when the logs this cache went by ended at another block of that number."""
        with self._lock:
            return self._confirm(block, block_hash)

    def _confirm(self, block: int, block_hash: str | None) -> bool:
        if self.at != block:
            return True  # nothing read for this block
        if self.hash is not None and block_hash is not None and self.hash != block_hash:
            log.info(f"vault books: block {block} changed under the read ({self.hash} then {block_hash}); "
                     "reading every book again", extra={"event": "books_reorg", "block": block})
            self._reset()
            return False
        self.hash = block_hash
        return True

    def _changed(self, layout: BookLayout, block: int) -> tuple[set[Address] | None, str]:
        """The vaults whose books the logs since :attr:`at` name, or None (and why) to read all."""
        self._seen_hash = None
        at = self.at
        if at is None or not self._results:
            return None, "first read"
        if block == at:
            self._seen_hash = self.hash
            return set(), ""
        if self.hash is None:
            return None, f"block {at}'s hash is not known"
        if block < at or block - at > self.max_gap:
            return None, f"block {block} after {at}"
        vaults = list(layout.vaults)
        span = {"fromBlock": hex(at + 1), "toBlock": hex(block)}
        calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", [hex(at), False])]
        for i in range(0, len(vaults), TOPIC_CHUNK):
            chunk = vaults[i:i + TOPIC_CHUNK]
            topics = [_topic(v) for v in chunk]
            calls.append(("eth_getLogs", [{**span, "address": list(chunk)}]))
            if layout.assets:
                tokens = list(layout.assets)
                calls.append(("eth_getLogs", [{**span, "address": tokens,
                                               "topics": [[TRANSFER, DEPOSIT, WITHDRAWAL], topics]}]))
                calls.append(("eth_getLogs", [{**span, "address": tokens, "topics": [TRANSFER, None, topics]}]))
        calls.append(("eth_getBlockByNumber", [hex(block), False]))
        try:
            replies = self.client.batch(calls)
        except KeeperError as e:
            return None, f"the logs since block {at} could not be read ({e})"
        before, after = replies[0], replies[-1]
        if not isinstance(before, dict) or before.get("hash") != self.hash:
            return None, f"block {at} is no longer the one read (a reorg)"
        if not isinstance(after, dict) or not after.get("hash"):
            return None, f"block {block} is not there yet"
        self._seen_hash = str(after["hash"])
        known = set(vaults)
        changed: set[Address] = set()
        for logs in replies[1:-1]:
            for entry in logs or ():
                changed |= _named(entry, known)
        return changed, ""


def _named(entry: dict[str, Any], vaults: set[Address]) -> set[Address]:
    """The vaults a log names: its emitter, or an indexed address topic (a token's from or to)."""
    out = set()
    emitter = Address(str(entry.get("address", "0x" + "0" * 40)))
    if emitter in vaults:
        out.add(emitter)
    for t in entry.get("topics", [])[1:3]:
        s = str(t)
        if len(s) == 66:
            a = Address("0x" + s[-40:])
            if a in vaults:
                out.add(a)
    return out
