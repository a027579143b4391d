"""One chain's read path for a tick: checked Chainlink prices, then every adapter's positions in
one batched multicall pinned to one block."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
        readings = self.oracle.read(number, ts) if self.oracle else {}
        by_asset = {a: readings[f] for a, f in self.asset_feeds.items() if f in readings}
        ctx = ReadContext(self.chain, number, ts, by_asset)
        plans = []
        for adapter in self.adapters:
            adapter.prepare(self.mc, number)
            accounts = self._accounts_for.get(id(adapter), self.accounts)
            if accounts:  # without accounts here, an adapter would only read its markets' state
                plans.append(adapter.plan(accounts))
        positions: list[Position] = [self._feed_covered(p) for p in run_plans(self.mc, plans, ctx)]
        return Snapshot(self.chain, number, block_hash, ts, positions, readings)

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
