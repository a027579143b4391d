"""One chain's read path for a tick: checked Chainlink prices and every adapter's positions, in
batched multicalls pinned to one block. The price feeds' call goes out beside the positions' calls
(when the multicall may have more than one request in flight): they are independent reads of one
block, and the decoders wait for the prices only when they first look one up."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from keeper.chain.client import ChainClient
from keeper.chain.multicall import Multicall
from keeper.chain.oracle import OracleReader, PriceReading
from keeper.domain import USD_ADDRESS, Address, Position
from keeper.protocols.base import Adapter, ReadContext, run_plans


@dataclass(frozen=True)
class Snapshot:
    chain: str
    block: int
    block_hash: str
    timestamp: int
    positions: list[Position]
    prices: dict[Address, PriceReading]  # by feed address


class _PendingPrices(Mapping[Address, PriceReading]):
    """The checked readings by asset of a price read still in flight: the first lookup waits for it
    (and raises its error)."""

    def __init__(self, readings: Callable[[], dict[Address, PriceReading]], asset_feeds: Mapping[Address, Address]):
        self._readings, self._feeds = readings, asset_feeds
        self._by_asset: dict[Address, PriceReading] | None = None

    def _resolved(self) -> dict[Address, PriceReading]:
        if self._by_asset is None:
            readings = self._readings()
            self._by_asset = {a: readings[f] for a, f in self._feeds.items() if f in readings}
        return self._by_asset

    def __getitem__(self, asset: Address) -> PriceReading:
        return self._resolved()[asset]

    def __iter__(self) -> Iterator[Address]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())


class ChainReader:
    def __init__(self, chain: str, client: ChainClient, multicall: Multicall, adapters: Sequence[Adapter],
                 accounts: Sequence[Address], oracle: OracleReader | None = None,
                 asset_feeds: Mapping[Address, Address] | None = None,
                 only: Mapping[Address, Sequence[str]] | None = None) -> None:
        self.chain = chain
        self.client = client
        self.mc = multicall
        self.adapters = list(adapters)
        self.accounts = list(accounts)
        self.oracle = oracle
        # asset address -> feed address: which checked reading prices which asset
        self.asset_feeds = dict(asset_feeds or {})
        # account -> the protocols it is read on; accounts not listed are read on every adapter.
        # The per-adapter lists are built once, so adapters that cache per-account layouts see a stable list.
        limits = {k: set(v) for k, v in (only or {}).items()}
        self._accounts_for = {id(a): [acct for acct in self.accounts
                                      if acct not in limits or a.protocol.value in limits[acct]]
                              for a in self.adapters}
        self._prices_pool: ThreadPoolExecutor | None = None  # the price read beside the positions' calls

    def head(self) -> tuple[int, str, int]:
        block = self.client.request("eth_getBlockByNumber", ["latest", False])
        return int(block["number"], 16), block["hash"], int(block["timestamp"], 16)

    def block_at(self, number: int) -> tuple[int, str, int]:
        block = self.client.request("eth_getBlockByNumber", [hex(number), False])
        return number, block["hash"], int(block["timestamp"], 16)

    def read(self, block: int | None = None, header: tuple[str, int] | None = None) -> Snapshot:
        """Every account's positions at ``block`` (the head when None); ``header``: the block's
        (hash, timestamp) when the caller has them already (a newHeads subscription)."""
        if block is not None and header is not None:
            number, block_hash, ts = block, header[0], header[1]
        else:
            number, block_hash, ts = self.head() if block is None else self.block_at(block)
        readings = self._start_prices(number, ts)
        ctx = ReadContext(self.chain, number, ts, _PendingPrices(readings, self.asset_feeds))
        plans = []
        for adapter in self.adapters:
            adapter.prepare(self.mc, number)
            accounts = self._accounts_for.get(id(adapter), self.accounts)
            if accounts:  # an adapter without accounts here would only read its markets' state
                plans.append(adapter.plan(accounts))
        positions: list[Position] = [self._feed_covered(p) for p in run_plans(self.mc, plans, ctx)]
        return Snapshot(self.chain, number, block_hash, ts, positions, readings())

    def _start_prices(self, block: int, timestamp: int) -> Callable[[], dict[Address, PriceReading]]:
        """The checked price readings at ``block``: started now on their own thread when the
        multicall may have several requests in flight, else read here."""
        oracle = self.oracle
        if oracle is None:
            return dict
        if self.mc.in_flight < 2:
            readings = oracle.read(block, timestamp)
            return lambda: readings
        if self._prices_pool is None:
            self._prices_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prices")
        return self._prices_pool.submit(oracle.read, block, timestamp).result

    def close(self) -> None:
        """Stop the price read's thread and the multicall's."""
        if self._prices_pool is not None:
            self._prices_pool.shutdown(wait=False)
        self.mc.close()

    def _feed_covered(self, p: Position) -> Position:
        """A position holding an asset with no configured feed is unusable: nothing checks that
        price (staleness, deviation), so it is never acted on — fail closed, with the asset named."""
        if not p.price_ok:
            return p
        assets = ([p.perp.index] if p.perp is not None else []) + [leg.asset for leg in p.legs]
        for a in assets:
            if a.address != USD_ADDRESS and a.address not in self.asset_feeds:
                return replace(p, price_ok=False,
                               price_issue=f"no price feed configured for {a.symbol} ({a.address}): "
                                           f"add it to the chain's feeds")
        return p
