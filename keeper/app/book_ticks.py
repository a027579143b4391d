"""The daemon's reads of the vaults' books from one tick to the next.

- The calls are laid out once a tick has acted, from its snapshot (``lay_out``), and the next tick
  reads them in the background while it reads the chain (``start``), through a :class:`BookCache` that
  reads again only the vaults whose books changed (keeper.app.book_cache).
- ``read`` uses that read when the tick's snapshot has the same layout and block, else reads again;
  and reads everything again when the block the cache went by is not the snapshot's.
- Which vaults have deleverage set up (their slippage setting or their caps on the GMX Vault) is read
  every ``DELEVERAGE_SETTINGS_BLOCKS``: settings change rarely, and the routes of those vaults are read
  at every tick.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from keeper.app.book_cache import BookCache
from keeper.app.books import BookLayout, VaultBook, book_layout, read_book_calls, read_books
from keeper.chain.multicall import Result
from keeper.config import ChainConfig
from keeper.domain import Address
from keeper.errors import KeeperError
from keeper.plan.whatif import AssetParams
from keeper.protocols.reader import ChainReader, Snapshot

DELEVERAGE_SETTINGS_BLOCKS = 50  # how often the daemon re-reads which vaults have deleverage set up


class TickBooks:
    def __init__(self, reader: ChainReader, ccfg: ChainConfig, io: ThreadPoolExecutor) -> None:
        self.reader, self.ccfg, self.io = reader, ccfg, io
        self.cache = BookCache(reader.client, reader.mc)
        self.layout: BookLayout | None = None  # the last tick's calls, read ahead by the next tick
        self.deleverage_vaults: frozenset[Address] = frozenset()
        self.deleverage_read_at: int | None = None
        self._ahead: tuple[BookLayout, int, Future[list[Result]]] | None = None

    def settings_due(self, block: int) -> bool:
        """Whether the tick at ``block`` reads the vaults' deleverage settings."""
        at = self.deleverage_read_at
        return at is None or not 0 <= block - at < DELEVERAGE_SETTINGS_BLOCKS

    def start(self, block: int) -> None:
        """Read the last tick's layout at ``block`` in the background."""
        self._ahead = None
        if self.layout is not None:
            self._ahead = (self.layout, block, self.io.submit(read_book_calls, self.reader, self.layout, block,
                                                                self.cache))

    def read(self, snap: Snapshot, assets: Sequence[AssetParams]) -> list[VaultBook]:
        """The books of the vaults acting for ``snap``'s positions, at its block."""
        prefetched = None
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[1] == snap.block:
            with contextlib.suppress(KeeperError):  # read again below
                prefetched = (ahead[0], ahead[1], ahead[2].result())
        due = self.settings_due(snap.block)

        def books() -> list[VaultBook]:
            return read_books(self.reader, snap, self.ccfg, assets, prefetched=prefetched, slippage=due,
                              deleverage_vaults=self.deleverage_vaults, cache=self.cache)

        out = books()
        if not self.cache.confirm(snap.block, snap.block_hash):
            prefetched = None  # the cache went by another block of this number: everything again
            out = books()
            self.cache.confirm(snap.block, snap.block_hash)
        if due:
            self.deleverage_vaults = frozenset(b.vault for b in out if b.deleverage)
            self.deleverage_read_at = snap.block
        return out

    def lay_out(self, snap: Snapshot, assets: Sequence[AssetParams]) -> None:
        """The calls the next tick reads ahead, from this tick's snapshot."""
        self.layout = book_layout(snap, self.ccfg, assets, slippage=self.settings_due(snap.block + 1))

    def forget(self, vault: Address) -> None:
        """Read this vault's book in full at the next tick (an action of it was refused or reverted)."""
        self.cache.forget(vault)
